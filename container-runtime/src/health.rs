//! Probes: HTTP GET, TCP connect and exec, each bounded by a timeout.
//!
//! # Design
//! The HTTP probe is a few lines of HTTP/1.1 over a `TcpStream` to `127.0.0.1`: it
//! sends `GET <path>` with `Connection: close` and reads only the status line. A
//! client library would bring TLS, pooling and redirects, none of which a probe on
//! loopback needs, and would cost resident memory in every container.
//!
//! Exec probes run like their daemon (env, user, workdir) through the reaper and are
//! killed with their process group at the timeout.

use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hearth_s9pk::spec::Probe;

use crate::process::{Invocation, Reaper, run_command};
use crate::supervisor::ExitInfo;

/// Runs one probe; `Err` carries a message for the user.
pub(crate) fn run_probe(
    probe: &Probe,
    timeout: Duration,
    daemon: Option<&Invocation>,
    reaper: &Reaper,
) -> Result<(), String> {
    match probe {
        Probe::Http(http) => http_probe(http.port, &http.path, http.expected_status, timeout),
        Probe::Tcp(tcp) => connect(tcp.port, timeout).map(drop),
        Probe::Exec(exec) => {
            let mut invocation = daemon.cloned().unwrap_or_default();
            invocation.argv = exec.command.clone();
            let output =
                run_command(reaper, &invocation, None, timeout, 4096).map_err(|e| e.to_string())?;
            match output.exit {
                ExitInfo::Code(0) => Ok(()),
                exit => {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    let detail = stderr.trim();
                    Err(if detail.is_empty() {
                        format!("{:?} failed ({exit})", exec.command)
                    } else {
                        format!("{:?} failed ({exit}): {detail}", exec.command)
                    })
                }
            }
        }
    }
}

fn connect(port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))
}

/// `GET path` on `127.0.0.1:port`; success if the status is `expected`.
pub(crate) fn http_probe(
    port: u16,
    path: &str,
    expected: u16,
    timeout: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let mut stream = connect(port, timeout)?;
    let left = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1));
    let io_err = |e: std::io::Error| format!("GET {path} on port {port}: {e}");
    stream.set_read_timeout(Some(left)).map_err(io_err)?;
    stream.set_write_timeout(Some(left)).map_err(io_err)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: hearth-container\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io_err)?;
    let mut line = Vec::new();
    let mut reader = BufReader::with_capacity(512, stream);
    crate::logs::read_line_capped(&mut reader, &mut line, 256).map_err(io_err)?;
    let status = parse_status_line(&line)
        .ok_or_else(|| format!("GET {path} on port {port}: not an HTTP response"))?;
    if status == expected {
        Ok(())
    } else {
        Err(format!(
            "GET {path} on port {port} returned {status}, expected {expected}"
        ))
    }
}

/// The status code of an `HTTP/1.x NNN reason` line.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = text.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503"), Some(503));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20 OK"), None);
    }

    fn serve_once(response: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"GET /health HTTP/1.1\r\n"));
            s.write_all(response.as_bytes()).unwrap();
        });
        port
    }

    #[test]
    fn http_probe_checks_the_status() {
        let t = Duration::from_secs(2);
        let port = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(http_probe(port, "/health", 200, t), Ok(()));
        let port = serve_once("HTTP/1.1 503 Unavailable\r\n\r\n");
        let err = http_probe(port, "/health", 200, t).unwrap_err();
        assert!(err.contains("returned 503, expected 200"), "{err}");
    }

    #[test]
    fn http_probe_times_out_on_a_silent_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let start = Instant::now();
        let err = http_probe(port, "/", 200, Duration::from_millis(200)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(err.starts_with("GET / on port"), "{err}");
        drop(listener);
    }

    #[test]
    fn closed_port_fails_with_the_address() {
        // The port stays owned by a connected, non-listening socket for the
        // whole test, so no parallel test can start listening on it: a
        // connection to it is refused.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let holder = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_peer, _) = listener.accept().unwrap();
        drop(listener);
        let port = holder.local_addr().unwrap().port();
        let err = connect(port, Duration::from_secs(1)).unwrap_err();
        assert!(
            err.starts_with(&format!("connect 127.0.0.1:{port}")),
            "{err}"
        );
    }
}
