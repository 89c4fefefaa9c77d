//! Compiles `style/main.scss` into the binary's stylesheet (no Node tool chain needed).

fn main() {
    // Read at run time, not with `env!`: cargo reuses a compiled build script for a checkout at
    // another path (CI clones afresh against a shared target directory), and a baked-in path
    // would point at a clone that may be gone.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let style = std::path::Path::new(&dir).join("../style");
    let src = style.join("main.scss");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", style.display());
    let css = match grass::from_path(
        &src,
        &grass::Options::default().style(grass::OutputStyle::Compressed),
    ) {
        Ok(css) => css,
        Err(e) => panic!("style/main.scss does not compile: {e}"),
    };
    let out =
        std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("style.css");
    if let Err(e) = std::fs::write(&out, css) {
        panic!("cannot write {}: {e}", out.display());
    }
}
