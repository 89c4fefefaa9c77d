//! A small SMTP server for the tests: on 127.0.0.1, no TLS, speaking just enough SMTP for
//! lettre (EHLO/HELO, AUTH PLAIN, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT). It records each
//! conversation's greeting name, credentials, envelope and data, and can be told to answer the
//! end of DATA with a refusal (451: try again; 550: never).

use base64::Engine;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message as the sink saw it: taken (`answer` 250) or refused.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub hello: String,
    /// (username, password) from AUTH PLAIN, if given.
    pub auth: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, lines joined with CRLF.
    pub data: String,
    /// What the sink answered at the end of DATA.
    pub answer: u16,
}

impl Received {
    /// A header's value (first occurrence, unfolded lines not handled: ours are short).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The body after the headers.
    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    /// The answer to the end of DATA: 250 unless told otherwise.
    refuse_with: Option<u16>,
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(conversation(stream, s.clone()));
            }
        });
        SmtpSink { port, shared }
    }

    /// Every message seen so far (taken or refused), oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().expect("sink").received.clone()
    }

    /// Answer the end of DATA with `code` from now on (`None`: take the message).
    pub fn refuse_with(&self, code: Option<u16>) {
        self.shared.lock().expect("sink").refuse_with = code;
    }
}

async fn conversation(stream: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut current = Received::default();
    macro_rules! say {
        ($($t:tt)*) => {
            if write.write_all(format!($($t)*).as_bytes()).await.is_err() {
                return;
            }
        };
    }
    say!("220 sink.test ESMTP\r\n");
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO ") {
            current.hello = line[5..].trim().to_owned();
            say!("250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n");
        } else if upper.starts_with("HELO ") {
            current.hello = line[5..].trim().to_owned();
            say!("250 sink.test\r\n");
        } else if upper.starts_with("AUTH PLAIN") {
            let given = line[10..].trim().to_owned();
            let encoded = if given.is_empty() {
                say!("334 \r\n");
                match lines.next_line().await {
                    Ok(Some(l)) => l,
                    _ => return,
                }
            } else {
                given
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            if let [_, user, password] = parts.as_slice() {
                current.auth = Some((user.clone(), password.clone()));
                say!("235 2.7.0 accepted\r\n");
            } else {
                say!("501 5.5.2 malformed\r\n");
            }
        } else if upper.starts_with("MAIL FROM:") {
            current.from = address(&line[10..]);
            current.to.clear();
            say!("250 2.1.0 ok\r\n");
        } else if upper.starts_with("RCPT TO:") {
            current.to.push(address(&line[8..]));
            say!("250 2.1.5 ok\r\n");
        } else if upper == "DATA" {
            say!("354 go ahead\r\n");
            let mut data = vec![];
            loop {
                match lines.next_line().await {
                    Ok(Some(l)) if l == "." => break,
                    Ok(Some(l)) => data.push(l.strip_prefix('.').map(str::to_owned).unwrap_or(l)),
                    _ => return,
                }
            }
            current.data = data.join("\r\n");
            let refuse = shared.lock().expect("sink").refuse_with;
            current.answer = refuse.unwrap_or(250);
            shared.lock().expect("sink").received.push(current.clone());
            match refuse {
                Some(451) => say!("451 4.3.0 try again later\r\n"),
                Some(code) => say!("{code} 5.1.1 mailbox unavailable\r\n"),
                None => say!("250 2.0.0 queued\r\n"),
            }
        } else if upper == "RSET" || upper == "NOOP" {
            say!("250 2.0.0 ok\r\n");
        } else if upper == "QUIT" {
            say!("221 2.0.0 bye\r\n");
            return;
        } else {
            say!("502 5.5.1 not implemented\r\n");
        }
    }
}

/// `<a@b>` (with any parameters after it) → `a@b`.
fn address(rest: &str) -> String {
    let rest = rest.trim();
    match (rest.find('<'), rest.find('>')) {
        (Some(a), Some(b)) if a < b => rest[a + 1..b].to_owned(),
        _ => rest.split_whitespace().next().unwrap_or("").to_owned(),
    }
}
