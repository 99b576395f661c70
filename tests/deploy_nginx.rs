//! `nginx/subgpt.conf` serving TLS in front of a fake backend, with a real nginx: only the
//! webhook and `/healthz` are proxied, the webhook is rate-limited but takes Telegram's 100
//! parallel deliveries, and the Telegram allow-list switches on with one include.
//!
//! Needs on the machine: nginx, openssl (the project's test script installs them); a missing
//! one fails the test with a message naming it.

// Each deploy test binary uses only part of the helpers.
#[allow(dead_code)]
mod deploy;

use deploy::instance::*;
use deploy::nginx::*;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn nginx_site_proxies_only_the_webhook_and_healthz() {
    let backend = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhook"))
        .and(header("x-telegram-bot-api-secret-token", "test_secret"))
        .and(header("x-forwarded-proto", "https"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&backend)
        .await;
    Mock::given(method("GET"))
        .and(path("/healthz"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&backend)
        .await;
    for route in ["/metrics", "/readyz"] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_string("metrics"))
            .mount(&backend)
            .await;
    }
    let site = NginxSite::start(&backend.address().to_string(), |conf| conf);
    let error_log = || site.error_log();
    let (http_port, base) = (site.http_port, site.base());

    let client = https_client();

    let resp = client
        .post(format!("{base}/webhook"))
        .header("X-Telegram-Bot-Api-Secret-Token", "test_secret")
        .header("Content-Type", "application/json")
        .body(r#"{"update_id":1}"#)
        .send()
        .await
        .expect("POST /webhook through nginx");
    assert_eq!(
        resp.status(),
        200,
        "POST /webhook is proxied:\n{}",
        error_log()
    );

    let resp = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "ok");

    for route in ["/metrics", "/readyz", "/", "/webhookx"] {
        let resp = client
            .get(format!("{base}{route}"))
            .send()
            .await
            .expect("GET");
        assert!(
            resp.status() == 404 || resp.status() == 403,
            "GET {route} must not be exposed, got {}",
            resp.status()
        );
    }
    let resp = client
        .get(format!("{base}/webhook"))
        .send()
        .await
        .expect("GET /webhook");
    assert!(
        resp.status().is_client_error(),
        "GET /webhook is refused, got {}",
        resp.status()
    );

    let big = vec![b'x'; 1024 * 1024 + 512 * 1024];
    let resp = client
        .post(format!("{base}/webhook"))
        .header("X-Telegram-Bot-Api-Secret-Token", "test_secret")
        .body(big)
        .send()
        .await
        .expect("POST an oversized body");
    assert_eq!(resp.status(), 413, "bodies over 1 MiB are refused by nginx");

    let resp = client
        .get(format!("http://127.0.0.1:{http_port}/webhook"))
        .send()
        .await
        .expect("GET over plain HTTP");
    assert_eq!(resp.status(), 301, "port 80 redirects");
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("https://") && location.ends_with("/webhook"),
        "redirect to https: {location}"
    );

    let seen = backend
        .received_requests()
        .await
        .expect("request recording is on");
    let paths: Vec<String> = seen
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert!(
        !paths
            .iter()
            .any(|p| p.ends_with("/metrics") || p.ends_with("/readyz")),
        "the backend must never see /metrics or /readyz: {paths:?}"
    );
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.as_str() == "POST /webhook")
            .count(),
        1,
        "exactly the one valid webhook POST reaches the backend: {paths:?}"
    );
}

#[tokio::test]
async fn nginx_rate_limits_the_webhook_but_lets_100_parallel_deliveries_through() {
    let backend = accepting_backend().await;
    let site = NginxSite::start(&backend.address().to_string(), |conf| conf);
    let client = https_client();
    let url = format!("{}/webhook", site.base());
    // Telegram's most: 100 deliveries at once (setWebhook max_connections).
    let first: Vec<u16> =
        futures::future::join_all((0..100).map(|_| post_update(client.clone(), url.clone()))).await;
    assert!(
        first.iter().all(|s| *s == 200),
        "100 parallel deliveries must all pass: {first:?}\n{}",
        site.error_log()
    );
    // A flood from one address meets limit_req: 429, and nothing of it reaches the bot.
    let mut statuses = Vec::new();
    while statuses.len() < 5000 && !statuses.contains(&429) {
        let batch =
            futures::future::join_all((0..50).map(|_| post_update(client.clone(), url.clone())))
                .await;
        statuses.extend(batch);
    }
    assert!(
        statuses.contains(&429),
        "no 429 after {} requests",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let passed = 100 + statuses.iter().filter(|s| **s == 200).count();
    let seen = backend.received_requests().await.expect("recording").len();
    assert_eq!(seen, passed, "only the requests answered 200 reach the bot");
}

#[tokio::test]
async fn nginx_telegram_allow_list_switches_on_with_one_include() {
    let backend = accepting_backend().await;
    let snippet = repo().join("nginx/telegram-only.conf");
    let site = NginxSite::start(&backend.address().to_string(), |conf| {
        let line = "# include /etc/nginx/snippets/subgpt-telegram-only.conf;";
        assert!(conf.contains(line), "the site has the include to uncomment");
        conf.replace(line, &format!("include {};", snippet.display()))
    });
    let status = post_update(https_client(), format!("{}/webhook", site.base())).await;
    assert_eq!(status, 403, "loopback is not Telegram");
    assert!(
        backend
            .received_requests()
            .await
            .expect("recording")
            .is_empty()
    );
}
