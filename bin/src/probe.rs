//! `ward probe URL`: one HTTP GET that exits 0 on a 2xx answer, for container health checks in an
//! image with no shell or curl (ECS runs it inside the task: `["CMD", "/usr/local/bin/ward",
//! "probe", "http://127.0.0.1:9090/livez"]`).
//!
//! Plain HTTP/1.0 over std's TCP with timeouts: it runs before any configuration or runtime, so a
//! broken configuration cannot make a live process look dead, and it costs a few milliseconds.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use url::Url;

/// How long connecting, writing and reading may each take; well under ECS's 5 s check timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks `target` and returns the status line of a 2xx answer, or why the probe failed.
pub fn probe(target: &str) -> Result<String, String> {
    let url = Url::parse(target).map_err(|error| format!("{target} is not a URL: {error}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "{target}: only http:// is probed (the ops listener speaks plain HTTP)"
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("{target} names no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = resolve(host, port)?;
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PROBE_TIMEOUT)))
        .map_err(|error| format!("cannot set timeouts: {error}"))?;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ward-probe\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("cannot send the request to {addr}: {error}"))?;
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .map_err(|error| format!("no answer from {addr}: {error}"))?;
    let status_line = status_line.trim_end().to_string();
    let status_code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("{addr} did not answer HTTP: {status_line:?}"))?;
    if (200..300).contains(&status_code) {
        Ok(status_line)
    } else {
        Err(format!("{target} answered {status_line}"))
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    // `Url` keeps IPv6 hosts in brackets; the resolver wants them bare.
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    (bare_host, port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {host}: {error}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;

    use super::*;

    /// Serves one connection with `answer` and returns the request it read.
    fn serve_once(answer: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 1024];
            let num_read = stream.read(&mut buffer).unwrap();
            stream.write_all(answer.as_bytes()).unwrap();
            String::from_utf8_lossy(&buffer[..num_read]).into_owned()
        });
        (addr, handle)
    }

    #[test]
    fn a_2xx_answer_passes_and_the_path_is_asked_for() {
        let (addr, handle) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        let status_line = probe(&format!("http://{addr}/livez")).unwrap();
        assert_eq!(status_line, "HTTP/1.1 200 OK");
        assert!(
            handle
                .join()
                .unwrap()
                .starts_with("GET /livez HTTP/1.0\r\n")
        );
    }

    #[test]
    fn a_503_fails_naming_the_status() {
        let (addr, _handle) = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let error = probe(&format!("http://{addr}/readyz")).unwrap_err();
        assert!(error.contains("503"), "{error}");
    }

    #[test]
    fn nothing_listening_and_bad_urls_fail() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(
            probe(&format!("http://{addr}/livez"))
                .unwrap_err()
                .contains("cannot connect")
        );
        assert!(probe("not a url").is_err());
        assert!(
            probe("https://127.0.0.1:9090/livez")
                .unwrap_err()
                .contains("only http://")
        );
    }
}
