//! `pipewright health-check`: asks a running server's `/-/readiness` and exits 0 when it answers
//! 200. It is the container image's `HEALTHCHECK` (the image has no curl), and reads the same
//! `PIPEWRIGHT_LISTEN` as `serve`, so it finds the server wherever the image's settings put it.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct HealthCheckArgs {
    /// The address the server listens on, as given to `serve` (an unspecified address such as
    /// 0.0.0.0 is asked on loopback) [default: 127.0.0.1:8929]
    #[arg(long, env = "PIPEWRIGHT_LISTEN")]
    listen: Option<String>,
    /// The readiness URL to ask instead [default: http://<listen>/-/readiness]
    #[arg(long)]
    url: Option<String>,
    /// Seconds to wait for the answer
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

pub fn run(args: HealthCheckArgs) -> anyhow::Result<()> {
    let url = match args.url {
        Some(url) => url,
        None => readiness_url(args.listen.as_deref().unwrap_or("127.0.0.1:8929"))?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout))
            .build()?;
        anyhow::Ok(client.get(&url).send().await?.status())
    });
    let status = status.with_context(|| format!("{url} did not answer"))?;
    if status != reqwest::StatusCode::OK {
        bail!("{url} answered {status}");
    }
    println!("{url}: ready");
    Ok(())
}

/// `http://<listen>/-/readiness`, with an unspecified address asked on loopback.
fn readiness_url(listen: &str) -> anyhow::Result<String> {
    let addr: std::net::SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        // A host name (`localhost:8929`) is asked as written.
        Err(_) => return Ok(format!("http://{listen}/-/readiness")),
    };
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    Ok(format!(
        "http://{}/-/readiness",
        std::net::SocketAddr::new(ip, addr.port())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        for (listen, url) in [
            ("0.0.0.0:8929", "http://127.0.0.1:8929/-/readiness"),
            ("[::]:80", "http://[::1]:80/-/readiness"),
            ("10.0.0.5:9000", "http://10.0.0.5:9000/-/readiness"),
            ("localhost:8929", "http://localhost:8929/-/readiness"),
        ] {
            assert_eq!(readiness_url(listen).ok().as_deref(), Some(url), "{listen}");
        }
    }
}
