//! The JSON progress stream of `POST /plugins/pull`, `/upgrade` and `/{name}/push`
//! ([`JsonMessage`], Docker's `jsonmessage.JSONMessage`).
//!
//! The stream is one JSON object per line, each line ended by `\r\n` ([`LINE_END`]), sent
//! with status 200 and `Content-Type: application/json`. An error after streaming started is
//! a final line `{"errorDetail":{"message":"…"},"error":"…"}`. Keys are written in Go's field
//! order and every one is left out when empty, as Docker's encoder does.
//!
//! ```
//! use dockplug_protocol::progress::JsonMessage;
//! assert_eq!(JsonMessage::status("Pulling from vieux/sshfs").with_id("latest").to_line()?,
//!            "{\"status\":\"Pulling from vieux/sshfs\",\"id\":\"latest\"}\r\n");
//! assert_eq!(JsonMessage::progress("58db06bb3dba", "Downloading", 100, 2000).to_line()?,
//!            "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":100,\"total\":2000},\"id\":\"58db06bb3dba\"}\r\n");
//! assert_eq!(JsonMessage::error("boom").to_line()?,
//!            "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n");
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};

/// The end of every line of a progress stream.
pub const LINE_END: &str = "\r\n";

/// The status texts dockerd streams for plugin pulls and pushes (Moby `plugin/backend_linux.go`
/// `Pull`/`Push` and `distribution/xfer`), per layer or blob unless noted.
pub mod status {
    /// The blob is already in the content store.
    pub const ALREADY_EXISTS: &str = "Already exists";
    /// Queued behind other downloads.
    pub const WAITING: &str = "Waiting";
    /// Download about to start.
    pub const PULLING_FS_LAYER: &str = "Pulling fs layer";
    /// Downloading, with counts.
    pub const DOWNLOADING: &str = "Downloading";
    /// Downloaded.
    pub const DOWNLOAD_COMPLETE: &str = "Download complete";
    /// Extracting into the rootfs, with counts.
    pub const EXTRACTING: &str = "Extracting";
    /// Extracted.
    pub const COMPLETE: &str = "Complete";
    /// Push about to start.
    pub const PREPARING: &str = "Preparing";
    /// Uploading, with counts.
    pub const UPLOADING: &str = "Uploading";
    /// Uploaded (also what every job reports at the end of a push).
    pub const UPLOAD_COMPLETE: &str = "Upload complete";
}

/// The `id` of a per-layer message: the first 12 hex digits of the digest
/// (`sha256:58db06bb3dba…` gives `58db06bb3dba`).
pub fn short_id(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.get(..12).unwrap_or(hex)
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// One message of a progress stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct JsonMessage {
    /// `stream`: raw output (builds).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stream: String,
    /// `status`: e.g. `Downloading`, `Pull complete`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// `progressDetail`: byte counts; `{}` on a per-layer status without counts.
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<JsonProgress>,
    /// `progress`: the rendered progress bar (deprecated by Docker, still sent).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub progress: String,
    /// `id`: the layer (first 12 hex digits) or tag the message is about.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// `from`: the image an event is about.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// `time`: Unix seconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub time: i64,
    /// `timeNano`: Unix nanoseconds.
    #[serde(rename = "timeNano", skip_serializing_if = "is_zero")]
    pub time_nano: i64,
    /// `errorDetail`: the error, structured.
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<JsonError>,
    /// `error`: the error message (deprecated by Docker, still sent).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// `aux`: out-of-band data, e.g. [`PushResult`] at the end of a push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<Aux>,
}

/// The raw JSON of an `aux` member, kept verbatim (key order included, as Go's
/// `json.RawMessage`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Aux(Box<serde_json::value::RawValue>);

impl Aux {
    /// Serializes `value` as the aux payload.
    ///
    /// # Errors
    /// When `value` cannot be represented as JSON.
    pub fn new<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Aux)
    }

    /// The raw JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Decodes the payload, e.g. as a [`PushResult`].
    ///
    /// # Errors
    /// When the payload is not a `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl PartialEq for Aux {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// `progressDetail` of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct JsonProgress {
    /// `current`: bytes done.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: i64,
    /// `total`: bytes in all (0 when unknown).
    #[serde(skip_serializing_if = "is_zero")]
    pub total: i64,
    /// `start`: Unix seconds when the transfer started.
    #[serde(skip_serializing_if = "is_zero")]
    pub start: i64,
    /// `hidecounts`: do not show the byte counts.
    #[serde(skip_serializing_if = "is_false")]
    pub hidecounts: bool,
    /// `units`: what is counted, when not bytes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub units: String,
}

impl JsonProgress {
    /// The progress bar dockerd puts in `progress`, as Docker's `JSONProgress.String()`
    /// renders it on a daemon without a terminal (200 columns): `[==>   ] 1.2MB/2.07MB`.
    /// The time-left part needs `start`, which dockerd never sets, so it is left out.
    pub fn render(&self) -> String {
        if self.current <= 0 && self.total <= 0 {
            return String::new();
        }
        if self.total <= 0 {
            return if self.units.is_empty() {
                format!("{:>8}", human_size(self.current))
            } else {
                format!("{} {}", self.current, self.units)
            };
        }
        // As Go: float division, truncated, halved, capped at 50 (negative stays negative).
        let percentage = (((self.current as f64 / self.total as f64) * 100.0) as i64 / 2).min(50);
        let done = usize::try_from(percentage).unwrap_or(0);
        let bar = format!("[{}>{}] ", "=".repeat(done), " ".repeat(50 - done));
        let numbers = if self.hidecounts {
            String::new()
        } else if self.units.is_empty() {
            if self.current > self.total {
                format!("{:>8}", human_size(self.current))
            } else {
                format!("{:>8}/{}", human_size(self.current), human_size(self.total))
            }
        } else if self.current > self.total {
            format!("{} {}", self.current, self.units)
        } else {
            format!("{}/{} {}", self.current, self.total, self.units)
        };
        bar + &numbers
    }
}

/// A size in decimal units with 4 significant digits, as go-units' `HumanSize`
/// (`2.07MB`, `999B`, `1kB`).
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g4(size), UNITS[i])
}

/// Go's `%.4g`.
fn format_g4(v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    let sci = format!("{v:.3e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..4).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exp.abs());
    }
    let decimals = usize::try_from(3 - exp).unwrap_or(0);
    trim(&format!("{v:.decimals$}"))
}

/// `errorDetail` of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct JsonError {
    /// `code`: rarely set.
    #[serde(skip_serializing_if = "is_zero")]
    pub code: i64,
    /// `message`: the error text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The `aux` of the last message of a push: `{"Tag","Digest","Size"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PushResult {
    /// `Tag`: the tag pushed.
    #[serde(rename = "Tag")]
    pub tag: String,
    /// `Digest`: the manifest digest (`sha256:…`).
    #[serde(rename = "Digest")]
    pub digest: String,
    /// `Size`: the manifest size in bytes.
    #[serde(rename = "Size")]
    pub size: i64,
}

crate::gojson::go_json!(JsonMessage, JsonProgress, JsonError, PushResult);

impl JsonMessage {
    /// A plain status line, e.g. `Pulling from vieux/sshfs` or `Digest: sha256:…`.
    pub fn status(status: impl Into<String>) -> Self {
        Self { status: status.into(), ..Self::default() }
    }

    /// A per-item status without counts (`Pulling fs layer`, `Download complete`): it carries
    /// `"progressDetail":{}` as Docker's formatter writes.
    pub fn item(id: impl Into<String>, status: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            status: status.into(),
            progress_detail: Some(JsonProgress::default()),
            ..Self::default()
        }
    }

    /// A per-item status with byte counts (`Downloading`, `Uploading`, `Extracting`).
    pub fn progress(
        id: impl Into<String>,
        status: impl Into<String>,
        current: i64,
        total: i64,
    ) -> Self {
        Self {
            id: id.into(),
            status: status.into(),
            progress_detail: Some(JsonProgress { current, total, ..JsonProgress::default() }),
            ..Self::default()
        }
    }

    /// [`JsonMessage::progress`] with the rendered bar in `progress`, exactly as dockerd
    /// streams it.
    pub fn progress_bar(
        id: impl Into<String>,
        status: impl Into<String>,
        current: i64,
        total: i64,
    ) -> Self {
        let mut m = Self::progress(id, status, current, total);
        m.progress = m.progress_detail.as_ref().map(JsonProgress::render).unwrap_or_default();
        m
    }

    /// The error line that ends a failed stream.
    pub fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            error_detail: Some(JsonError { code: 0, message: message.clone() }),
            error: message,
            ..Self::default()
        }
    }

    /// An `aux` message.
    ///
    /// # Errors
    /// When `aux` cannot be represented as JSON.
    pub fn aux<T: Serialize>(aux: &T) -> Result<Self, serde_json::Error> {
        Ok(Self { aux: Some(Aux::new(aux)?), ..Self::default() })
    }

    /// `Pulling from <familiar repository>`, with the tag (or reference) as `id`.
    pub fn pulling_from(repository: &str, id: impl Into<String>) -> Self {
        Self::status(format!("Pulling from {repository}")).with_id(id)
    }

    /// `Digest: <manifest digest>`.
    pub fn digest(digest: &str) -> Self {
        Self::status(format!("Digest: {digest}"))
    }

    /// `The push refers to repository [<familiar repository>]`.
    pub fn push_refers_to(repository: &str) -> Self {
        Self::status(format!("The push refers to repository [{repository}]"))
    }

    /// Sets `id`.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The error text of an error line (`errorDetail.message`, else `error`), if any.
    pub fn error_message(&self) -> Option<&str> {
        match &self.error_detail {
            Some(d) if !d.message.is_empty() => Some(&d.message),
            _ => (!self.error.is_empty()).then_some(self.error.as_str()),
        }
    }

    /// The message as one stream line, with [`LINE_END`].
    ///
    /// # Errors
    /// Only when `aux` holds a value JSON cannot represent.
    pub fn to_line(&self) -> Result<String, serde_json::Error> {
        let mut s = crate::gojson::to_string(self)?;
        s.push_str(LINE_END);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            JsonMessage::item("2614035edf8c", "Pulling fs layer").to_line().unwrap(),
            "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"2614035edf8c\"}\r\n"
        );
        let push = PushResult { tag: "1".into(), digest: "sha256:ab".into(), size: 418 };
        assert_eq!(
            JsonMessage::aux(&push).unwrap().to_line().unwrap(),
            "{\"aux\":{\"Tag\":\"1\",\"Digest\":\"sha256:ab\",\"Size\":418}}\r\n"
        );
        let back: JsonMessage =
            serde_json::from_str(JsonMessage::aux(&push).unwrap().to_line().unwrap().trim_end())
                .unwrap();
        assert_eq!(back.aux.unwrap().parse::<PushResult>().unwrap(), push);
        assert_eq!(JsonMessage::default().to_line().unwrap(), "{}\r\n");
    }

    #[test]
    fn human_sizes_like_go_units() {
        for (n, s) in [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (1234, "1.234kB"),
            (12345, "12.35kB"),
            (999_999, "1000kB"),
            (2_069_919, "2.07MB"),
            (1_000_000_000, "1GB"),
            (i64::MAX, "9.223EB"),
        ] {
            assert_eq!(human_size(n), s, "{n}");
        }
    }

    #[test]
    fn progress_bar_like_docker() {
        let p = |current, total| JsonProgress { current, total, ..JsonProgress::default() };
        assert_eq!(p(0, 0).render(), "");
        assert_eq!(p(1_500, 0).render(), "   1.5kB");
        assert_eq!(
            p(1_034_979, 2_069_919).render(),
            format!("[{}>{}]  1.035MB/2.07MB", "=".repeat(25), " ".repeat(25))
        );
        assert_eq!(p(3, 2).render(), format!("[{}>]       3B", "=".repeat(50)));
        let units =
            JsonProgress { current: 1, total: 4, units: "files".into(), ..JsonProgress::default() };
        assert_eq!(units.render(), format!("[{}>{}] 1/4 files", "=".repeat(12), " ".repeat(38)));
        let hidden = JsonProgress { hidecounts: true, ..p(4, 4) };
        assert_eq!(hidden.render(), format!("[{}>] ", "=".repeat(50)));
        let line = JsonMessage::progress_bar("58db06bb3dba", "Downloading", 2_069_919, 2_069_919);
        assert_eq!(
            line.to_line().unwrap(),
            format!(
                "{{\"status\":\"Downloading\",\"progressDetail\":{{\"current\":2069919,\"total\":2069919}},\"progress\":\"[{}\\u003e]   2.07MB/2.07MB\",\"id\":\"58db06bb3dba\"}}\r\n",
                "=".repeat(50)
            )
        );
    }

    #[test]
    fn pull_and_push_lines() {
        assert_eq!(
            short_id("sha256:58db06bb3dba026e103ef7f91e9a005035d2135431062ede4326bb99ca0ee668"),
            "58db06bb3dba"
        );
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id("sha256:é"), "é");
        assert_eq!(
            JsonMessage::pulling_from("golden/vol", "1").to_line().unwrap(),
            "{\"status\":\"Pulling from golden/vol\",\"id\":\"1\"}\r\n"
        );
        assert_eq!(JsonMessage::digest("sha256:ab").status, "Digest: sha256:ab");
        assert_eq!(
            JsonMessage::push_refers_to("127.0.0.1:5000/golden/rich").status,
            "The push refers to repository [127.0.0.1:5000/golden/rich]"
        );
        assert_eq!(JsonMessage::item("x", status::UPLOAD_COMPLETE).status, "Upload complete");
    }

    #[test]
    fn read_back() {
        let line = r#"{"status":"Downloading","progressDetail":{"current":1,"total":2},"progress":"[>  ] 1B/2B","id":"ab"}"#;
        let m: JsonMessage = serde_json::from_str(line).unwrap();
        assert_eq!(
            m.progress_detail,
            Some(JsonProgress { current: 1, total: 2, ..Default::default() })
        );
        assert_eq!(serde_json::to_string(&m).unwrap(), line);
        let e: JsonMessage =
            serde_json::from_str(r#"{"errorDetail":{"message":"a"},"error":"b"}"#).unwrap();
        assert_eq!(e.error_message(), Some("a"));
        let e: JsonMessage = serde_json::from_str(r#"{"error":"b"}"#).unwrap();
        assert_eq!(e.error_message(), Some("b"));
        assert_eq!(JsonMessage::status("x").error_message(), None);
        assert!(serde_json::from_str::<JsonMessage>(r#"{"time":"now"}"#).is_err());
    }
}
