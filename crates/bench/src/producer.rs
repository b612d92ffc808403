//! The producer of (c) and of the latency phase: bare keep-alive connections posting single
//! events.

use anyhow::Context;

/// One keep-alive HTTP/1.1 connection to `POST /api/events`, driven by hyper's bare connection
/// API, as a load generator (wrk, k6) drives a server: (c) shares the machine's two cores with
/// its producer, and a full client (pool, URL parsing, redirect layer) there would be counted
/// against hookwarden.
pub(crate) struct Producer {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    authority: String,
    authorization: String,
}

impl Producer {
    pub(crate) async fn connect(base: &str, api_key: &str) -> anyhow::Result<Self> {
        let authority = base
            .strip_prefix("http://")
            .context("the bench's server is plain http")?
            .to_owned();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            authority,
            authorization: format!("Basic {api_key}"),
        })
    }

    /// Post one event; anything but `202` is an error that stops the run.
    pub(crate) async fn post_event(&mut self, body: String) -> anyhow::Result<()> {
        use http_body_util::BodyExt;
        let request = hyper::Request::post("/api/events")
            .header("host", &self.authority)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status.as_u16() == 202,
            "ingest answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        Ok(())
    }
}

/// The event of `body`, as JSON text, with an optional message.
pub(crate) fn event_body(i: usize, message: Option<&str>) -> String {
    match message {
        Some(m) => format!(
            r#"{{"name":"PACKAGE_COMPLETE","packageId":"lat","origin":"OSS","message":"{m}"}}"#
        ),
        None => format!(r#"{{"name":"PACKAGE_COMPLETE","packageId":"pkg-{i}","origin":"OSS"}}"#),
    }
}
