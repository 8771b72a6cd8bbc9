//! The Hermes topics hark uses and their JSON payloads (as Rhasspy 2.5 and `rhasspy-hermes`
//! 0.6.2 write them: camelCase keys, `siteId` defaulting to "default").

use serde::{Deserialize, Serialize};

/// Audio in: `hermes/audioServer/<site>/audioFrame`, a WAV file per message.
pub const AUDIO_FRAME_ALL: &str = "hermes/audioServer/+/audioFrame";
/// Silences a site until every reason is cleared.
pub const TOGGLE_OFF: &str = "hermes/hotword/toggleOff";
/// Clears one reason (or, with an empty reason, all of them).
pub const TOGGLE_ON: &str = "hermes/hotword/toggleOn";
/// Asks for the words hark detects.
pub const GET_HOTWORDS: &str = "rhasspy/hotword/getHotwords";
/// The answer to [`GET_HOTWORDS`].
pub const HOTWORDS: &str = "rhasspy/hotword/hotwords";
/// Errors hark reports about what a site sends.
pub const ERROR: &str = "hermes/error/hotword";
/// The most a control message (toggle, getHotwords) may weigh.
pub const MAX_CONTROL_BYTES: usize = 64 * 1024;
/// The longest site id or reason accepted.
pub const MAX_NAME: usize = 128;

/// The audio-frame topic of one site.
pub fn audio_frame(site: &str) -> String {
    format!("hermes/audioServer/{site}/audioFrame")
}

/// The site of an audio-frame topic (`None` for any other topic).
pub fn site_of_audio_frame(topic: &str) -> Option<&str> {
    let site = topic
        .strip_prefix("hermes/audioServer/")?
        .strip_suffix("/audioFrame")?;
    (!site.is_empty() && !site.contains('/') && site.len() <= MAX_NAME).then_some(site)
}

/// The topic a detection of `word` goes to.
pub fn detected(word: &str) -> String {
    format!("hermes/hotword/{word}/detected")
}

fn default_site() -> String {
    "default".into()
}

/// The payload of `toggleOn` / `toggleOff`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Toggle {
    #[serde(default = "default_site")]
    pub site_id: String,
    /// "" (all reasons), `dialogueSession`, `playAudio`, `ttsSay` or another.
    #[serde(default)]
    pub reason: String,
}

/// The payload of `getHotwords`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GetHotwords {
    #[serde(default = "default_site")]
    pub site_id: String,
    /// Echoed in the answer.
    #[serde(default)]
    pub id: Option<String>,
}

/// The payload of `hermes/hotword/<word>/detected`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Detected {
    pub model_id: String,
    pub model_version: String,
    /// Always "personal": the words are the user's own.
    pub model_type: String,
    /// The threshold the detection crossed.
    pub current_sensitivity: f32,
    pub site_id: String,
    pub session_id: Option<String>,
    pub send_audio_captured: Option<bool>,
    pub lang: Option<String>,
    pub custom_entities: Option<serde_json::Value>,
}

impl Detected {
    /// The message for a detection of `word` at `site`.
    pub fn new(word: &str, threshold: f32, site: &str) -> Detected {
        Detected {
            model_id: word.into(),
            model_version: MODEL_VERSION.into(),
            model_type: "personal".into(),
            current_sensitivity: threshold,
            site_id: site.into(),
            session_id: None,
            send_audio_captured: None,
            lang: None,
            custom_entities: None,
        }
    }
}

/// The version reported for every word: hark's own.
pub const MODEL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One word in the answer to `getHotwords`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub model_id: String,
    pub model_words: String,
    pub model_version: String,
    pub model_type: String,
}

/// The payload of `rhasspy/hotword/hotwords`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hotwords {
    pub models: Vec<Model>,
    pub site_id: String,
    pub id: Option<String>,
}

impl Hotwords {
    /// The answer listing `words`.
    pub fn new(words: &[String], ask: GetHotwords) -> Hotwords {
        let models = words
            .iter()
            .map(|w| Model {
                model_id: w.clone(),
                model_words: w.clone(),
                model_version: MODEL_VERSION.into(),
                model_type: "personal".into(),
            })
            .collect();
        Hotwords {
            models,
            site_id: ask.site_id,
            id: ask.id,
        }
    }
}

/// The payload of `hermes/error/hotword`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HotwordError {
    pub error: String,
    pub context: Option<String>,
    pub site_id: String,
    pub session_id: Option<String>,
}

/// Parses a control payload, capped; the error names the topic.
pub fn parse_control<T: for<'a> Deserialize<'a>>(topic: &str, payload: &[u8]) -> Result<T, String> {
    if payload.len() > MAX_CONTROL_BYTES {
        return Err(format!(
            "{topic}: a payload of {} bytes is over the {MAX_CONTROL_BYTES}-byte cap",
            payload.len()
        ));
    }
    // Some publishers send an empty payload for "all defaults".
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        payload
    };
    serde_json::from_slice(payload).map_err(|e| format!("{topic}: bad JSON payload: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_payloads_are_hermes_shaped() {
        assert_eq!(
            site_of_audio_frame("hermes/audioServer/kitchen/audioFrame"),
            Some("kitchen")
        );
        assert_eq!(site_of_audio_frame("hermes/audioServer//audioFrame"), None);
        assert_eq!(
            site_of_audio_frame("hermes/audioServer/a/b/audioFrame"),
            None
        );
        assert_eq!(
            site_of_audio_frame("hermes/audioServer/k/audioSessionFrame"),
            None
        );
        let d = serde_json::to_value(Detected::new("lantern", 0.5, "kitchen")).unwrap();
        assert_eq!(
            d,
            serde_json::json!({"modelId": "lantern", "modelVersion": MODEL_VERSION,
                "modelType": "personal", "currentSensitivity": 0.5, "siteId": "kitchen",
                "sessionId": null, "sendAudioCaptured": null, "lang": null, "customEntities": null})
        );
        let t: Toggle = parse_control(TOGGLE_OFF, br#"{"reason":"ttsSay"}"#).unwrap();
        assert_eq!(
            (t.site_id.as_str(), t.reason.as_str()),
            ("default", "ttsSay")
        );
        let g: GetHotwords = parse_control(GET_HOTWORDS, b"").unwrap();
        assert_eq!((g.site_id.as_str(), g.id), ("default", None));
        let e = parse_control::<Toggle>(TOGGLE_ON, b"{\"siteId\": 3}").unwrap_err();
        assert!(
            e.starts_with("hermes/hotword/toggleOn: bad JSON payload"),
            "{e}"
        );
        let e = parse_control::<Toggle>(TOGGLE_ON, &vec![b' '; MAX_CONTROL_BYTES + 1]).unwrap_err();
        assert!(e.contains("over the 65536-byte cap"), "{e}");
    }
}
