//! Request classes of a splice service (CARISMA, seed 003 §7): which class a
//! request belongs to ([`Classes::classify`]), whether it may be admitted
//! ([`Admission`]), what a refused one gets ([`Refusal`] and the answer
//! bytes of its class), and in which order the serving member releases
//! waiting requests into its kernel ([`Scheduler`]).
//!
//! Pure: time is passed in, nothing reads a clock or does I/O, and the
//! packet-path calls (`classify`, `admit`, `offer`, `release`, `finish`,
//! `expire`) allocate nothing while queues stay within the capacity they
//! were built with (the regex engine's first match on a thread sets up its
//! cache once). Counting outcomes and sending answers is the caller's job
//! (`shoal-dataplane`).
//!
//! Class ids are dense: the written classes in order, with
//! [`shoal_config::DEFAULT_CLASS`] at its written place or, when not
//! written, last.

mod admission;
mod schedule;

use regex::Regex;
use shoal_config::{Dispatch, RefuseAction, RequestClass, DEFAULT_CLASS, MAX_CLASSES};

use crate::http::{strip_port, RequestHead};

pub use admission::{Admission, Figures};
pub use schedule::{Released, Scheduler};

/// A request class, by its index in [`Classes`] (dense, below
/// [`MAX_CLASSES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(pub u8);

impl ClassId {
    /// The index, for per-class arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Why a request was refused; each is counted per class
/// (`shoal_dataplane_class_refused_total{class,reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The class's `max_rate` token bucket was empty.
    Rate,
    /// The member that would serve it was at or above the class's `max_load`.
    Load,
    /// The class had `max_in_flight` requests active or waiting.
    InFlight,
    /// The class's queue at the serving member held `max_queue` requests.
    QueueFull,
    /// It waited `max_wait_ms` in the queue without being released.
    WaitedTooLong,
}

impl Refusal {
    /// Every reason, in counter order.
    pub const ALL: [Refusal; 5] = [
        Refusal::Rate,
        Refusal::Load,
        Refusal::InFlight,
        Refusal::QueueFull,
        Refusal::WaitedTooLong,
    ];

    /// The metric label.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Rate => "rate",
            Refusal::Load => "load",
            Refusal::InFlight => "in_flight",
            Refusal::QueueFull => "queue_full",
            Refusal::WaitedTooLong => "waited_too_long",
        }
    }
}

/// What a refused request of a class gets, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A complete HTTP/1.1 response (503 busy or a redirect) with
    /// `Connection: close`; the connection is closed after it.
    Respond(Vec<u8>),
    /// A TCP reset.
    Reset,
}

/// Why the classes of a service could not be built (the config validation
/// refuses the same, so this is only met by configs that skipped it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassError {
    /// A `path_regex` does not compile.
    #[error("class {class}: path_regex is not a regular expression: {reason}")]
    BadRegex {
        /// The class.
        class: String,
        /// What the regex engine said.
        reason: String,
    },
    /// More classes than [`MAX_CLASSES`].
    #[error("{0} classes; at most {MAX_CLASSES}")]
    TooMany(usize),
}

/// One class as the dataplane uses it: its match conditions (compiled),
/// scheduling parameters, limits and the answer its refusals get.
#[derive(Debug, Clone)]
pub struct Class {
    /// The config it came from (limits, priority, weight, ...).
    pub config: RequestClass,
    /// What a refused request gets.
    pub answer: Answer,
    path_regex: Option<Regex>,
}

impl Class {
    fn new(config: RequestClass) -> Result<Class, ClassError> {
        let path_regex = match &config.path_regex {
            Some(re) => Some(Regex::new(re).map_err(|e| ClassError::BadRegex {
                class: config.name.clone(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        Ok(Class {
            answer: answer(&config),
            config,
            path_regex,
        })
    }

    /// Whether `head` meets every condition the class writes.
    pub fn matches(&self, head: &RequestHead<'_>) -> bool {
        let c = &self.config;
        (c.methods.is_empty() || c.methods.iter().any(|m| m == head.method))
            && c.host.as_deref().is_none_or(|want| {
                head.host
                    .is_some_and(|h| strip_port(h).eq_ignore_ascii_case(strip_port(want)))
            })
            && c.path_prefix
                .as_deref()
                .is_none_or(|p| head.path.starts_with(p))
            && self
                .path_regex
                .as_ref()
                .is_none_or(|re| re.is_match(head.path))
            && c.header.as_deref().is_none_or(|h| head.header(h).is_some())
            && c.cookie.as_deref().is_none_or(|k| head.cookie(k).is_some())
    }
}

/// The classes of one service, in class-id order.
#[derive(Debug, Clone)]
pub struct Classes {
    classes: Vec<Class>,
    default: ClassId,
}

impl Classes {
    /// The classes `dispatch` writes plus the implicit [`DEFAULT_CLASS`].
    pub fn new(dispatch: &Dispatch) -> Result<Classes, ClassError> {
        let mut configs = dispatch.classes.clone();
        if !configs.iter().any(|c| c.name == DEFAULT_CLASS) {
            configs.push(RequestClass::catch_all(DEFAULT_CLASS));
        }
        if configs.len() > MAX_CLASSES {
            return Err(ClassError::TooMany(configs.len()));
        }
        let default = configs
            .iter()
            .position(|c| c.name == DEFAULT_CLASS)
            .map_or(ClassId(0), |i| ClassId(i as u8));
        let classes = configs
            .into_iter()
            .map(Class::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Classes { classes, default })
    }

    /// The class of a request: the first written class whose conditions
    /// all hold, else [`DEFAULT_CLASS`].
    pub fn classify(&self, head: &RequestHead<'_>) -> ClassId {
        self.classes
            .iter()
            .enumerate()
            .find(|&(i, c)| i != self.default.index() && c.matches(head))
            .map_or(self.default, |(i, _)| ClassId(i as u8))
    }

    /// The class of requests no written class matches.
    pub fn default_class(&self) -> ClassId {
        self.default
    }

    /// Number of classes (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Always false: there is at least the default class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// One class.
    pub fn get(&self, id: ClassId) -> &Class {
        &self.classes[id.index()]
    }

    /// Every class with its id.
    pub fn iter(&self) -> impl Iterator<Item = (ClassId, &Class)> {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, c)| (ClassId(i as u8), c))
    }

    /// The class called `name`.
    pub fn by_name(&self, name: &str) -> Option<ClassId> {
        self.iter()
            .find(|(_, c)| c.config.name == name)
            .map(|(i, _)| i)
    }
}

/// The answer a class's refusals get, built once.
fn answer(c: &RequestClass) -> Answer {
    match c.on_refuse {
        RefuseAction::Reset => Answer::Reset,
        RefuseAction::Busy => {
            let body = c
                .busy_body
                .clone()
                .unwrap_or_else(|| "Service Unavailable\n".to_string());
            let kind = if body.trim_start().starts_with('<') {
                "text/html"
            } else {
                "text/plain"
            };
            Answer::Respond(
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: {kind}\r\n\
                     Content-Length: {}\r\nRetry-After: {}\r\nCache-Control: no-store\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len(),
                    c.retry_after_s
                )
                .into_bytes(),
            )
        }
        RefuseAction::Redirect => {
            let reason = if c.redirect_status == 307 {
                "Temporary Redirect"
            } else {
                "Found"
            };
            Answer::Respond(
                format!(
                    "HTTP/1.1 {} {reason}\r\nLocation: {}\r\nContent-Length: 0\r\n\
                     Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                    c.redirect_status,
                    c.redirect_to.as_deref().unwrap_or("/")
                )
                .into_bytes(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;

    fn class(name: &str, f: impl FnOnce(&mut RequestClass)) -> RequestClass {
        let mut c = RequestClass::catch_all(name);
        f(&mut c);
        c
    }

    fn classes(list: Vec<RequestClass>) -> Classes {
        Classes::new(&Dispatch {
            classes: list,
            ..Dispatch::default()
        })
        .expect("classes build")
    }

    fn of(cs: &Classes, request: &str) -> String {
        let head = parse_head(request.as_bytes())
            .expect("valid request")
            .expect("complete head");
        cs.get(cs.classify(&head)).config.name.clone()
    }

    #[test]
    fn the_first_class_whose_conditions_all_hold_wins() {
        let cs = classes(vec![
            class("api-post", |c| {
                c.methods = vec!["POST".into()];
                c.path_prefix = Some("/api/".into());
            }),
            class("api", |c| c.path_prefix = Some("/api/".into())),
            class("images", |c| {
                c.path_regex = Some(r"\.(png|jpe?g|gif)$".into());
                c.host = Some("Static.Example".into());
            }),
            class("logged-in", |c| c.cookie = Some("session".into())),
            class("bots", |c| c.header = Some("X-Bot".into())),
        ]);
        assert_eq!(cs.len(), 6, "five written plus default");
        assert_eq!(cs.default_class(), ClassId(5));
        let r = |line: &str, extra: &str| {
            format!("{line} HTTP/1.1\r\nHost: www.example\r\n{extra}\r\n")
        };
        assert_eq!(
            of(&cs, &r("POST /api/x", "Content-Length: 0\r\n")),
            "api-post"
        );
        assert_eq!(of(&cs, &r("GET /api/x", "")), "api");
        assert_eq!(
            of(&cs, &r("GET /a/b.png", "")),
            "default",
            "host does not match"
        );
        assert_eq!(
            of(
                &cs,
                "GET /a/b.jpeg HTTP/1.1\r\nHost: static.example:8080\r\n\r\n"
            ),
            "images",
            "host case-insensitive, port ignored"
        );
        assert_eq!(
            of(
                &cs,
                "GET /a/b.jpeg?x HTTP/1.1\r\nHost: static.example\r\n\r\n"
            ),
            "images",
            "the regex sees the path, not the query"
        );
        assert_eq!(
            of(&cs, &r("GET /", "Cookie: a=1; session=xyz\r\n")),
            "logged-in"
        );
        assert_eq!(of(&cs, &r("GET /", "Cookie: sessions=xyz\r\n")), "default");
        assert_eq!(of(&cs, &r("GET /", "x-bot: yes\r\n")), "bots");
        assert_eq!(of(&cs, &r("GET /", "")), "default");
    }

    #[test]
    fn a_written_default_class_keeps_its_place_and_limits() {
        let cs = classes(vec![
            class("default", |c| c.max_queue = 7),
            class("api", |c| c.path_prefix = Some("/api/".into())),
        ]);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs.default_class(), ClassId(0));
        assert_eq!(cs.get(ClassId(0)).config.max_queue, 7);
        // The default class matches every request, but it is only the
        // fallback: a later class that matches still wins.
        assert_eq!(of(&cs, "GET /api/1 HTTP/1.1\r\nHost: a\r\n\r\n"), "api");
        assert_eq!(of(&cs, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), "default");
        assert_eq!(cs.by_name("api"), Some(ClassId(1)));
        assert_eq!(cs.by_name("nope"), None);
    }

    #[test]
    fn a_bad_regex_is_an_error_naming_the_class() {
        let err = Classes::new(&Dispatch {
            classes: vec![class("x", |c| c.path_regex = Some("(".into()))],
            ..Dispatch::default()
        })
        .expect_err("bad regex");
        assert!(err.to_string().starts_with("class x: path_regex"), "{err}");
    }

    fn parse_response(bytes: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(n)) = resp.parse(bytes) else {
            panic!(
                "not a complete response: {:?}",
                String::from_utf8_lossy(bytes)
            );
        };
        let headers = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        (resp.code.unwrap_or(0), headers, bytes[n..].to_vec())
    }

    #[test]
    fn refusal_answers_are_complete_responses_that_close() {
        let busy = Class::new(class("bulk", |c| {
            c.retry_after_s = 30;
            c.busy_body = Some("<h1>busy</h1>\n".into());
        }))
        .expect("class");
        let Answer::Respond(bytes) = &busy.answer else {
            panic!("busy answers with a response");
        };
        let (code, headers, body) = parse_response(bytes);
        let field = |h: &[(String, String)], n: &str| {
            h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        };
        assert_eq!(code, 503);
        assert_eq!(field(&headers, "retry-after").as_deref(), Some("30"));
        assert_eq!(
            field(&headers, "content-type").as_deref(),
            Some("text/html")
        );
        assert_eq!(field(&headers, "connection").as_deref(), Some("close"));
        assert_eq!(body, b"<h1>busy</h1>\n");
        assert_eq!(
            field(&headers, "content-length"),
            Some(body.len().to_string())
        );

        let plain = Class::new(RequestClass::catch_all("x")).expect("class");
        let Answer::Respond(bytes) = &plain.answer else {
            panic!("busy is the default");
        };
        let (code, headers, body) = parse_response(bytes);
        assert_eq!(
            (code, body.as_slice()),
            (503, &b"Service Unavailable\n"[..])
        );
        assert_eq!(field(&headers, "retry-after").as_deref(), Some("1"));

        for status in [302, 307] {
            let redirect = Class::new(class("r", |c| {
                c.on_refuse = RefuseAction::Redirect;
                c.redirect_to = Some("https://overflow.example/".into());
                c.redirect_status = status;
            }))
            .expect("class");
            let Answer::Respond(bytes) = &redirect.answer else {
                panic!("redirect answers with a response");
            };
            let (code, headers, body) = parse_response(bytes);
            assert_eq!(code, status);
            assert_eq!(
                field(&headers, "location").as_deref(),
                Some("https://overflow.example/")
            );
            assert_eq!(field(&headers, "content-length").as_deref(), Some("0"));
            assert!(body.is_empty());
        }
        let reset = Class::new(class("z", |c| c.on_refuse = RefuseAction::Reset)).expect("class");
        assert_eq!(reset.answer, Answer::Reset);
    }
}
