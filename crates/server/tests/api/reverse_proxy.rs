//! Behind a reverse proxy: with `--trusted-proxies` naming the proxy, the client's address is
//! the one the proxy forwarded for (`X-Forwarded-For`), so one stranger's wrong passwords lock
//! out that stranger's address and nobody else's, and `/-/metrics` answers only allowlisted
//! clients, not everyone the proxy forwards. Without the setting the header means nothing: a
//! client cannot dodge the lockout by inventing addresses.

use pipewright_server::client_address::IpRanges;

use crate::both_backends;
use crate::support::{ROOT_PASSWORD, TestApp};
use crate::web::Browser;

both_backends!(
    a_strangers_wrong_passwords_lock_only_the_strangers_address,
    without_trusted_proxies_invented_addresses_do_not_dodge_the_lockout,
    metrics_through_a_trusted_proxy_answer_only_allowlisted_clients,
);

/// GitLab's per-address limit: this many wrong passwords from one address lock it.
const FAILURES_PER_ADDRESS: usize = 50;

/// The same server as `app` (its database and data), started with `--trusted-proxies
/// 127.0.0.1/32`: the proxy runs on the server's host, as the README's nginx does.
async fn behind_a_trusted_proxy(app: &TestApp) -> TestApp {
    app.start_replica_with(|c| c.trusted_proxies = IpRanges::parse("127.0.0.1/32").unwrap())
        .await
}

/// Wrong passwords for `FAILURES_PER_ADDRESS` different (unknown) accounts, so no account
/// locks first: only the address's count reaches its limit.
async fn guess_passwords(browser: &mut Browser) {
    for i in 0..FAILURES_PER_ADDRESS {
        let page = browser.sign_in_as(&format!("nobody-{i}"), "guess").await;
        assert_eq!(page.status, 401, "attempt {i}: {}", page.body);
    }
}

async fn a_strangers_wrong_passwords_lock_only_the_strangers_address(app: TestApp) {
    let proxied = behind_a_trusted_proxy(&app).await;
    let mut stranger = Browser::behind_proxy(&proxied, "203.0.113.5");
    guess_passwords(&mut stranger).await;

    // The stranger's address is locked, even with the right password.
    let page = stranger.sign_in_as("root", ROOT_PASSWORD).await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.body.contains("Too many failed sign-in attempts"));
    // Sending its own X-Forwarded-For does not help: the proxy appends the address it saw,
    // and the rightmost entry the proxy wrote is the one that counts.
    let mut disguised = Browser::behind_proxy(&proxied, "203.0.113.6, 203.0.113.5");
    assert_eq!(
        disguised.sign_in_as("root", ROOT_PASSWORD).await.status,
        429
    );

    // Everyone else behind the same proxy signs in.
    let mut neighbour = Browser::behind_proxy(&proxied, "203.0.113.6");
    assert_eq!(
        neighbour.sign_in_as("root", ROOT_PASSWORD).await.status,
        303
    );
    let mut on_the_proxy_host = Browser::new(&proxied);
    assert_eq!(
        on_the_proxy_host
            .sign_in_as("root", ROOT_PASSWORD)
            .await
            .status,
        303
    );
}

async fn without_trusted_proxies_invented_addresses_do_not_dodge_the_lockout(app: TestApp) {
    // A different made-up address on every attempt: all are counted for the TCP peer.
    for i in 0..FAILURES_PER_ADDRESS {
        let mut browser = Browser::behind_proxy(&app, &format!("198.51.100.{i}"));
        let page = browser.sign_in_as(&format!("nobody-{i}"), "guess").await;
        assert_eq!(page.status, 401, "attempt {i}: {}", page.body);
    }
    let mut fresh = Browser::behind_proxy(&app, "192.0.2.77");
    assert_eq!(fresh.sign_in_as("root", ROOT_PASSWORD).await.status, 429);
}

async fn metrics_through_a_trusted_proxy_answer_only_allowlisted_clients(app: TestApp) {
    let proxied = app
        .start_replica_with(|c| {
            c.trusted_proxies = IpRanges::parse("127.0.0.1/32").unwrap();
            c.monitoring_allowlist =
                pipewright_server::metrics::Allowlist::parse("127.0.0.0/8, 10.0.0.5").unwrap();
        })
        .await;
    let scrape = |forwarded_for: Option<&'static str>| {
        let mut req = proxied.client.get(format!("{}/-/metrics", proxied.url));
        if let Some(address) = forwarded_for {
            req = req.header("x-forwarded-for", address);
        }
        async move { req.send().await.unwrap() }
    };
    // The proxy on loopback forwards a stranger: GitLab's 404, no metrics.
    let res = scrape(Some("203.0.113.5")).await;
    assert_eq!(res.status(), 404);
    assert!(!res.text().await.unwrap().contains("pipewright_"));
    // A stranger claiming an allowlisted address gets nowhere either: the proxy appended the
    // stranger's own.
    assert_eq!(scrape(Some("10.0.0.5, 203.0.113.5")).await.status(), 404);
    // Prometheus at an allowlisted address, through the proxy; and the host itself.
    assert_eq!(scrape(Some("10.0.0.5")).await.status(), 200);
    assert_eq!(scrape(None).await.status(), 200);
}
