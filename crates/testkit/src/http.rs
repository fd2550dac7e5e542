//! One HTTP/1.1 request over a stream (`Connection: close`), for readiness probes and raw
//! Engine API or registry calls. Not a client library: no redirects, no keep-alive, a
//! bounded reply read to the end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::Error;

/// The most bytes a reply may have.
const MAX_REPLY: usize = 64 << 20;

/// A reply: status, headers (names lower-cased, in order) and the body, de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers as (lower-case name, value).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request to send: method, path and query, extra headers, body.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method.
    pub method: &'a str,
    /// The path and query.
    pub path: &'a str,
    /// Headers besides Host, Content-Length and Connection.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (sent with a Content-Length).
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A `GET` of `path`.
    pub fn get(path: &'a str) -> Request<'a> {
        Request { method: "GET", path, headers: &[], body: b"" }
    }
}

/// Sends `req` over a new connection to the unix socket `socket`, waiting at most `timeout`
/// for each read and write.
pub fn unix(socket: &Path, req: &Request<'_>, timeout: Duration) -> Result<Response, Error> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| Error::io(format!("connect to {}", socket.display()), e))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| Error::io("set a read timeout", e))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| Error::io("set a write timeout", e))?;
    exchange(stream, "localhost", req)
}

/// Sends `req` over a new TCP connection to `addr`, waiting at most `timeout` for the
/// connection and for each read and write.
pub fn tcp(addr: SocketAddr, req: &Request<'_>, timeout: Duration) -> Result<Response, Error> {
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| Error::io(format!("connect to {addr}"), e))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| Error::io("set a read timeout", e))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| Error::io("set a write timeout", e))?;
    exchange(stream, &addr.to_string(), req)
}

/// Sends `req` on `stream` and reads the reply to the end.
pub fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    req: &Request<'_>,
) -> Result<Response, Error> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n",
        req.method,
        req.path,
        req.body.len()
    );
    for (name, value) in req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(|e| Error::io("send a request head", e))?;
    if let Err(e) = stream.write_all(req.body) {
        // A server may answer (an error) and close before taking the whole body.
        if !matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
        {
            return Err(Error::io("send a request body", e));
        }
    }
    // A server that stops reading a body early (dockerd at a tar's end-of-archive blocks)
    // makes the kernel reset the connection when it closes: a reset after a reply is no error.
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if reply.len() > MAX_REPLY {
                    return Err(Error::protocol("read a reply", "more than 64 MiB"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !reply.is_empty() => break,
            Err(e) => return Err(Error::io("read a reply", e)),
        }
    }
    parse(&reply)
}

fn parse(reply: &[u8]) -> Result<Response, Error> {
    let bad = |detail: &str| Error::protocol("parse an HTTP reply", detail);
    let end =
        reply.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of head"))?;
    let head = String::from_utf8_lossy(&reply[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw = &reply[end + 4..];
    let chunked =
        headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body =
        if chunked { dechunk(raw).ok_or_else(|| bad("a broken chunk"))? } else { raw.to_vec() };
    Ok(Response { status, headers, body })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_reply_is_joined() {
        let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse(reply).unwrap();
        assert_eq!((r.status, r.body.as_slice(), r.header("x-a")), (200, &b"abcde"[..], Some("b")));
    }

    #[test]
    fn a_truncated_chunk_is_an_error() {
        let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc";
        assert!(matches!(parse(reply), Err(Error::Protocol { .. })));
    }
}
