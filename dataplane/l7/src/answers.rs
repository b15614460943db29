//! The answers the dataplane sends a client itself, without any server: the
//! complete HTTP/1.1 error responses for requests it refuses (bad, too
//! large, too slow, unsupported, no capacity).

/// The complete response the dataplane sends for `status` when a bad
/// request's configured outcome is `respond`: an HTTP/1.1 status line,
/// `Content-Type`, an exact `Content-Length`, `Connection: close` and a
/// one-line text body. Known statuses: 400, 408, 414, 431, 501, 503; any
/// other gets the 500 response.
pub fn error_response(status: u16) -> &'static [u8] {
    match status {
        400 => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n",
        408 => b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nRequest Timeout\n",
        414 => b"HTTP/1.1 414 URI Too Long\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nURI Too Long\n",
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\nRequest Header Fields Too Large\n",
        501 => b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nNot Implemented\n",
        503 => b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\nRetry-After: 1\r\n\r\nService Unavailable\n",
        _ => b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\nInternal Server Error\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_are_complete_and_close() {
        assert_eq!(
            error_response(400),
            &b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\
               Connection: close\r\n\r\nBad Request\n"[..]
        );
        for (status, reason) in [
            (400, "Bad Request"),
            (408, "Request Timeout"),
            (414, "URI Too Long"),
            (431, "Request Header Fields Too Large"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (999, "Internal Server Error"),
        ] {
            let bytes = error_response(status);
            let mut fields = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut fields);
            let Ok(httparse::Status::Complete(n)) = resp.parse(bytes) else {
                panic!("{status}: not a complete response");
            };
            assert_eq!(resp.version, Some(1));
            assert_eq!(resp.code, Some(if status == 999 { 500 } else { status }));
            assert_eq!(resp.reason, Some(reason));
            let field = |name: &str| {
                resp.headers
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(name))
                    .map(|f| f.value)
            };
            assert_eq!(field("connection"), Some(&b"close"[..]));
            let body = &bytes[n..];
            assert_eq!(body, format!("{reason}\n").as_bytes());
            assert_eq!(
                field("content-length"),
                Some(body.len().to_string().as_bytes())
            );
        }
    }
}
