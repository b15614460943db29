//! The two HTTP listeners (`tiny_http`, blocking, one thread each): the
//! admin API, which forwards mutating calls to the main loop and waits for
//! its answer, and the Prometheus exporter, which renders the latest
//! [`Status`] snapshot. Neither touches the membership state.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use shoal_config::Config;

use super::{Input, StartError};
use crate::admin::{self, Action, Policy, Request};
use crate::metrics;
use crate::status::Status;

pub(super) struct Shared {
    /// The latest snapshot, replaced whole by the main loop.
    pub(super) status: Mutex<Arc<Status>>,
    /// The config in force.
    pub(super) config: Mutex<Arc<Config>>,
    /// Who may call what on the admin API.
    pub(super) policy: Mutex<Policy>,
}

impl Shared {
    fn status(&self) -> Arc<Status> {
        locked(&self.status)
    }
}

/// A clone of what `m` holds (a poisoned lock still holds valid data: every
/// writer replaces the value whole).
pub(super) fn locked<T: Clone>(m: &Mutex<T>) -> T {
    m.lock()
        .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
}

pub(super) fn http_response(
    status: u16,
    body: &Value,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut text = serde_json::to_vec_pretty(body).unwrap_or_default();
    text.push(b'\n');
    let mut r = tiny_http::Response::from_data(text).with_status_code(status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        r.add_header(h);
    }
    if status == 401 {
        if let Ok(h) = tiny_http::Header::from_bytes(&b"WWW-Authenticate"[..], &b"Bearer"[..]) {
            r.add_header(h);
        }
    }
    r
}

pub(super) fn spawn_admin(server: Arc<tiny_http::Server>, shared: Arc<Shared>, tx: Sender<Input>) {
    thread::spawn(move || {
        for request in server.incoming_requests() {
            let auth = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.as_str().to_owned());
            let method = request.method().as_str().to_owned();
            let path = request.url().split('?').next().unwrap_or("").to_owned();
            let status = shared.status();
            let config = locked(&shared.config);
            let policy = locked(&shared.policy);
            let mut act = |a: Action| {
                let (rtx, rrx) = mpsc::channel();
                tx.send(Input::Admin(a, rtx))
                    .map_err(|_| (503, vec!["shoal-control is shutting down".to_owned()]))?;
                rrx.recv_timeout(Duration::from_secs(10))
                    .map_err(|_| (503, vec!["the main loop did not answer".to_owned()]))?
            };
            let resp = admin::handle(
                &Request {
                    method: &method,
                    path: &path,
                    authorization: auth.as_deref(),
                },
                &policy,
                &status,
                &config,
                &mut act,
            );
            let _ = request.respond(http_response(resp.status, &resp.body));
        }
    });
}

pub(super) fn spawn_metrics(server: Arc<tiny_http::Server>, shared: Arc<Shared>) {
    thread::spawn(move || {
        for request in server.incoming_requests() {
            let path = request.url().split('?').next().unwrap_or("").to_owned();
            let resp = if path == "/metrics" {
                let text = metrics::render(&shared.status());
                let mut r = tiny_http::Response::from_data(text.into_bytes());
                if let Ok(h) =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], metrics::CONTENT_TYPE)
                {
                    r.add_header(h);
                }
                r
            } else {
                tiny_http::Response::from_data(b"see /metrics\n".to_vec()).with_status_code(404)
            };
            let _ = request.respond(resp);
        }
    });
}

pub(super) fn http_server(
    what: &'static str,
    addr: SocketAddr,
) -> Result<Arc<tiny_http::Server>, StartError> {
    tiny_http::Server::http(addr)
        .map(Arc::new)
        .map_err(|e| StartError::Http {
            what,
            addr,
            reason: e.to_string(),
        })
}
