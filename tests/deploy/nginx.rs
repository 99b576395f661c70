//! Real nginx serving `nginx/subgpt.conf` (adapted to loopback ports and a self-signed
//! certificate) in front of a fake backend, for the deploy tests.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::instance::{free_ports, repo, run, wait_until};

pub fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(extra.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// nginx in the foreground, as a single process (no workers to outlive a kill), killed by
/// PID when dropped.
pub struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The site config with its deployment specifics swapped for the test's: the listen ports
/// (IPv6 listeners dropped: the test host may have no IPv6), the certificate, the upstream.
pub fn site_config_for_test(
    tls_port: u16,
    http_port: u16,
    cert_dir: &Path,
    backend: &str,
) -> String {
    let original =
        fs::read_to_string(repo().join("nginx/subgpt.conf")).expect("read nginx/subgpt.conf");
    let (mut tls_listens, mut http_listens) = (0, 0);
    let mut lines = Vec::new();
    for line in original.lines() {
        let t = line.trim_start();
        if t.starts_with("listen ") {
            if t.contains("[::]") {
                continue;
            }
            if let Some(rest) = t.strip_prefix("listen 443") {
                tls_listens += 1;
                lines.push(format!("    listen 127.0.0.1:{tls_port}{rest}"));
                continue;
            }
            if let Some(rest) = t.strip_prefix("listen 80") {
                http_listens += 1;
                lines.push(format!("    listen 127.0.0.1:{http_port}{rest}"));
                continue;
            }
            panic!("nginx/subgpt.conf: unexpected listen line: {line}");
        }
        lines.push(line.to_string());
    }
    assert_eq!(
        (tls_listens, http_listens),
        (1, 1),
        "one IPv4 listen each for 443 and 80"
    );
    let mut conf = lines.join("\n");
    for (from, to) in [
        ("server 127.0.0.1:8080;", format!("server {backend};")),
        (
            "/etc/letsencrypt/live/bot.example.com/fullchain.pem",
            cert_dir.join("cert.pem").display().to_string(),
        ),
        (
            "/etc/letsencrypt/live/bot.example.com/privkey.pem",
            cert_dir.join("key.pem").display().to_string(),
        ),
    ] {
        assert!(
            conf.contains(from),
            "nginx/subgpt.conf no longer contains {from:?}"
        );
        conf = conf.replace(from, &to);
    }
    conf
}

/// nginx serving the site (as adapted by [`site_config_for_test`], then by `edit`) in front of
/// `backend`, from a temp dir; killed when dropped.
pub struct NginxSite {
    pub tls_port: u16,
    pub http_port: u16,
    dir: tempfile::TempDir,
    // Dropped (killed) before `dir` goes away.
    _nginx: Nginx,
}

impl NginxSite {
    pub fn start(backend: &str, edit: impl FnOnce(String) -> String) -> NginxSite {
        let nginx = find_program("nginx", &["/usr/sbin/nginx"]).expect(
            "nginx is not installed (apt-get install nginx); the project's test script installs it",
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        let (out, text) = run({
            let mut c = Command::new("openssl");
            c.args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-keyout")
            .arg(t.join("key.pem"))
            .arg("-out")
            .arg(t.join("cert.pem"));
            c
        });
        assert!(
            out.status.success(),
            "openssl could not make a certificate:\n{text}"
        );
        let ports = free_ports(2);
        let (tls_port, http_port) = (ports[0], ports[1]);
        let site = edit(site_config_for_test(tls_port, http_port, t, backend));
        fs::write(t.join("subgpt.conf"), site).expect("write site config");
        let d = t.display();
        // Enough connections for 100 parallel clients plus their upstream connections.
        fs::write(
            t.join("nginx.conf"),
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\nevents {{ worker_connections 1024; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/subgpt.conf;\n}}\n"
            ),
        )
        .expect("write nginx.conf");
        let mut prefix = t.as_os_str().to_owned();
        prefix.push("/");
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(t.join("nginx.conf"))
            .arg("-e")
            .arg(t.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut nginx_proc = Nginx(child);
        let up = wait_until(Duration::from_secs(15), || {
            let exited = matches!(nginx_proc.0.try_wait(), Ok(Some(_)));
            exited
                || (TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", http_port)).is_ok())
        });
        let exited = nginx_proc.0.try_wait().expect("try_wait");
        let site = NginxSite {
            tls_port,
            http_port,
            dir: tmp,
            _nginx: nginx_proc,
        };
        assert!(
            up && exited.is_none(),
            "nginx did not start ({exited:?}):\n{}",
            site.error_log()
        );
        site
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.tls_port)
    }
}

pub fn https_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// A backend that answers every POST /webhook with 200, recording them.
pub async fn accepting_backend() -> MockServer {
    let backend = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backend)
        .await;
    backend
}

/// POSTs an update with the secret; the status, or 0 when the request failed.
pub async fn post_update(client: reqwest::Client, url: String) -> u16 {
    client
        .post(url)
        .header("X-Telegram-Bot-Api-Secret-Token", "test_secret")
        .body(r#"{"update_id":1}"#)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
