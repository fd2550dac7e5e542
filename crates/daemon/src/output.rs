//! Plugin output in the daemon's log, tagged with the plugin's name and ID.
//!
//! The manager turns every line a plugin writes into a `tracing` record carrying the plugin
//! ID. [`Tagged`] wraps the executor so that each plugin's output sinks are written inside a
//! `plugin{name=… id=…}` span: every such record then carries the name too. The name is read
//! from the plugin's record in the manager's root (`<root>/<id>/config.json`, Moby's on-disk
//! format, `plugin.Name`): the manager wrote it before it asked for a start, and a name never
//! changes while the plugin exists.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use dockplug_manager::{Executor, ExecutorError, ExitReceiver, OutputSink, PluginStdio, Signal};
use oci_spec::runtime::Spec;
use tokio::io::AsyncWrite;

/// An executor whose plugins' output is logged with their name and ID.
#[derive(Debug)]
pub struct Tagged<E> {
    inner: E,
    plugin_root: PathBuf,
}

impl<E> Tagged<E> {
    /// Wraps `inner`; plugin records are read from `plugin_root` (`<root>/<id>/config.json`).
    pub fn new(inner: E, plugin_root: PathBuf) -> Self {
        Self { inner, plugin_root }
    }

    fn tag(&self, id: &str, stdio: PluginStdio) -> PluginStdio {
        let name = std::fs::read(self.plugin_root.join(id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.pointer("/plugin/Name").and_then(|n| n.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let span = tracing::info_span!("plugin", name = %name, id = %id);
        PluginStdio::new(
            Box::pin(InSpan { span: span.clone(), inner: stdio.stdout }),
            Box::pin(InSpan { span, inner: stdio.stderr }),
        )
    }
}

impl<E: Executor> Executor for Tagged<E> {
    async fn create(&self, id: &str, spec: Spec, stdio: PluginStdio) -> Result<(), ExecutorError> {
        let stdio = self.tag(id, stdio);
        self.inner.create(id, spec, stdio).await
    }

    async fn restore(&self, id: &str, stdio: PluginStdio) -> Result<bool, ExecutorError> {
        let stdio = self.tag(id, stdio);
        self.inner.restore(id, stdio).await
    }

    async fn is_running(&self, id: &str) -> Result<bool, ExecutorError> {
        self.inner.is_running(id).await
    }

    async fn signal(&self, id: &str, signal: Signal) -> Result<(), ExecutorError> {
        self.inner.signal(id, signal).await
    }

    fn take_exits(&self) -> Option<ExitReceiver> {
        self.inner.take_exits()
    }
}

/// A sink written inside a span.
struct InSpan {
    span: tracing::Span,
    inner: OutputSink,
}

impl AsyncWrite for InSpan {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        this.inner.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        this.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        this.inner.as_mut().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncWriteExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// A sink that logs each write, as the manager's sinks do.
    struct Logging;

    impl AsyncWrite for Logging {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            tracing::info!(plugin = "abc", "{}", String::from_utf8_lossy(buf));
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn output_records_carry_name_and_id() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("abc"))?;
        std::fs::write(
            dir.path().join("abc/config.json"),
            br#"{"plugin":{"Name":"localvol:latest"}}"#,
        )?;
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || writer.clone()),
        );
        let _guard = tracing::subscriber::set_default(subscriber);
        let tagged = Tagged::new((), dir.path().to_owned());
        let stdio = tagged.tag("abc", PluginStdio::new(Box::pin(Logging), Box::pin(Logging)));
        let mut out = stdio.stdout;
        out.write_all(b"hello").await?;
        let text =
            String::from_utf8(buf.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone())?;
        assert!(text.contains("plugin{name=localvol:latest id=abc}"), "{text}");
        assert!(text.contains("hello"), "{text}");
        Ok(())
    }
}
