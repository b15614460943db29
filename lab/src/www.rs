//! The document tree every server's nginx serves, and each server's nginx
//! config.
//!
//! `/files/{1k,1m,8m}` are the first bytes of the AES-128-CTR keystream
//! with key "shoal-lab-files!" and IV 0 (made by `openssl enc`, as always):
//! the same bytes every run, so their SHA-256 are known constants.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::topology::{paths, Server, VIP};
use crate::LabError;

/// The key of the keystream: "shoal-lab-files!".
const FILE_KEY: &str = "73686f616c2d6c61622d66696c657321";
const FILE_IV: &str = "00000000000000000000000000000000";

/// The documents: name under `/files/` and size in bytes.
pub const FILES: [(&str, usize); 3] = [("1k", 1024), ("1m", 1 << 20), ("8m", 8 << 20)];

/// `len` bytes of the lab's keystream.
fn keystream(len: usize) -> Result<Vec<u8>, LabError> {
    let what = "openssl enc -aes-128-ctr".to_owned();
    let mut child = Command::new("openssl")
        .args([
            "enc",
            "-aes-128-ctr",
            "-nosalt",
            "-K",
            FILE_KEY,
            "-iv",
            FILE_IV,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Spawn {
            what: what.clone(),
            source: e,
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&vec![0; len]));
    let mut bytes = Vec::with_capacity(len);
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_end(&mut bytes)
        .map_err(|e| LabError::Spawn {
            what: what.clone(),
            source: e,
        })?;
    let wrote = writer.join().map_err(|_| LabError::Command {
        command: what.clone(),
        output: "the writer thread panicked".to_owned(),
    })?;
    let out = child.wait_with_output().map_err(|e| LabError::Spawn {
        what: what.clone(),
        source: e,
    })?;
    if !out.status.success() || wrote.is_err() || bytes.len() != len {
        return Err(LabError::Command {
            command: what,
            output: format!(
                "{} bytes instead of {len}: {}",
                bytes.len(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(bytes)
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Writes `www/files/*` and `www/SHA256SUMS` (`sha256sum` format), readable by all.
pub fn make_files() -> Result<(), LabError> {
    let www = paths::www();
    let files = www.join("files");
    std::fs::create_dir_all(&files).map_err(|e| LabError::io(&files, e))?;
    let mut sums = String::new();
    for (name, size) in FILES {
        let bytes = keystream(size)?;
        let path = files.join(name);
        write_mode(&path, &bytes, 0o644)?;
        let _ = writeln!(sums, "{}  {name}", sha256_hex(&bytes));
    }
    write_mode(&www.join("SHA256SUMS"), sums.as_bytes(), 0o644)?;
    for dir in [Path::new(crate::topology::RUN_DIR), &www, &files] {
        set_mode(dir, 0o755)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` with permission bits `mode`.
pub fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), LabError> {
    std::fs::write(path, bytes).map_err(|e| LabError::io(path, e))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LabError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(path, e))
}

/// One file of the tree as `status` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileInfo {
    /// Where it is.
    pub path: PathBuf,
    /// Its URL path (`/files/8m`).
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// The files listed in `www/SHA256SUMS`, in its order.
pub fn file_infos() -> Vec<(String, FileInfo)> {
    let Ok(text) = std::fs::read_to_string(paths::www().join("SHA256SUMS")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (digest, name) = (f.next()?, f.next()?);
            let path = paths::www().join("files").join(name);
            let size = std::fs::metadata(&path).ok()?.len();
            Some((
                name.to_owned(),
                FileInfo {
                    path,
                    url: format!("/files/{name}"),
                    size,
                    sha256: digest.to_owned(),
                },
            ))
        })
        .collect()
}

/// nginx of one server: one worker, the VIP and the own address on port 80,
/// `/whoami` answered in the config, `/files/` from the tree (and again
/// under `/slow/`, at 512 KiB/s a connection), 404 for the rest, `X-Served-By: srvK` on every response.
#[derive(Debug, Clone)]
pub struct NginxConf {
    /// The server.
    pub server: Server,
    /// The user nginx's workers run as (`www-data`, else `nobody`).
    pub user: String,
}

impl NginxConf {
    /// The config text (paths in the server's run directory).
    pub fn render(&self) -> String {
        let dir = self.server.dir();
        let dir = dir.display();
        let name = self.server.name();
        let addr = self.server.addr();
        let root = paths::www();
        let root = root.display();
        let user = &self.user;
        format!(
            r#"# nginx of lab server {name} (generated by shoal-lab; removed by lab down)
daemon on;
user {user};
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;

events {{
    worker_connections 4096;
}}

http {{
    types {{ }}
    default_type application/octet-stream;
    # The client's port and the request's number on its kernel connection:
    # what a keep-alive connection's moves between servers leave behind.
    log_format shoal '$remote_addr:$remote_port [$time_local] $msec "$request" '
                     '$status $body_bytes_sent $connection $connection_requests';
    access_log {dir}/access.log shoal;
    client_body_temp_path {dir}/nginx-tmp/body;
    proxy_temp_path {dir}/nginx-tmp/proxy;
    fastcgi_temp_path {dir}/nginx-tmp/fastcgi;
    uwsgi_temp_path {dir}/nginx-tmp/uwsgi;
    scgi_temp_path {dir}/nginx-tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 5s;
    server_tokens off;
    add_header X-Served-By {name} always;

    server {{
        listen {VIP}:80;
        listen {addr}:80;
        server_name _;
        root {root};

        location = /whoami {{
            default_type text/plain;
            return 200 "{name}\n";
        }}
        location /files/ {{
        }}
        # The same documents sent at 512 KiB/s a connection: a download to
        # a client on a slow link, busy for seconds (request classes test).
        location /slow/ {{
            alias {root}/files/;
            limit_rate 512k;
        }}
        location /id/ {{
            default_type text/plain;
            return 200 "{name} $uri $remote_port\n";
        }}
        location / {{
            return 404;
        }}
    }}
}}
"#
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_conf_names_the_server() {
        let conf = NginxConf {
            server: Server::new(3).unwrap(),
            user: "www-data".to_owned(),
        }
        .render();
        for want in [
            "listen 198.18.0.100:80;",
            "listen 198.18.0.13:80;",
            "add_header X-Served-By srv3 always;",
            "return 200 \"srv3\\n\";",
            "pid /run/shoal-lab/srv3/nginx.pid;",
            "root /run/shoal-lab/www;",
            "user www-data;",
            "keepalive_timeout 5s;",
            "worker_processes 1;",
            "alias /run/shoal-lab/www/files/;",
            "limit_rate 512k;",
        ] {
            assert!(conf.contains(want), "{want} missing from:\n{conf}");
        }
    }

    /// The keystream is what it always was (the constants of the README and
    /// of `status`): needs `openssl`, as `up` does.
    #[test]
    fn keystream_files_have_the_known_digests() {
        let sum = |len| sha256_hex(&keystream(len).unwrap());
        assert_eq!(
            sum(1024),
            "257a3ec6036d75d0cd4589e15a81f419bab44d63bd2550e92328f4ee12a40adb"
        );
        assert_eq!(
            sum(1 << 20),
            "bacc6e8ce24dee77be4d2331f5ad5d4665907c8938a8a70978842f2cd236628c"
        );
    }
}
