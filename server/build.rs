//! Compiles `style/main.scss` into the binary's stylesheet (no Node tool chain needed).

fn main() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../style/main.scss");
    println!("cargo:rerun-if-changed={src}");
    println!(
        "cargo:rerun-if-changed={}/../style",
        env!("CARGO_MANIFEST_DIR")
    );
    let css = match grass::from_path(
        src,
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
