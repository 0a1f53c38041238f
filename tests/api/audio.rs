//! Voiceflow audio Routee cannot play (an `.mp3` URL, a `data:` URI) is
//! converted by the gateway and played from its own `/audio/<hash>.wav`; audio
//! that cannot be decoded is said as its text (issue 13 item 6).

use std::io::Cursor;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ivr_gateway::routee::Verb;
use ivr_gateway::sim::Behaviour;
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ADMIN_TOKEN, Options, StoreKind, phone, spawn_app};
use crate::redis_server::RedisServer;

const LONG: Duration = Duration::from_secs(40);
const KEY: &str = "VF.DM.66aa00000000000000000009.AudioKeySecret000";
const MP3: &[u8] = include_bytes!("../fixtures/tone-440hz-16k-mono.mp3");

/// A quarter second of 200 Hz at 22.05 kHz stereo, as a `data:audio/wav` URI.
fn wav_data_uri() -> String {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 22_050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for i in 0..22_050 / 4 {
        let t = f64::from(i) / 22_050.0;
        let s = (8_000.0 * (2.0 * std::f64::consts::PI * 200.0 * t).sin()) as i16;
        w.write_sample(s).unwrap();
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    format!(
        "data:audio/wav;base64,{}",
        STANDARD.encode(out.into_inner())
    )
}

/// Voiceflow (wiremock) whose launch plays an mp3, a data: URI and a broken
/// mp3, then offers Accept; the audio files are served by the same server.
async fn voiceflow_with_audio(prompts: impl FnOnce(&str) -> Vec<Value>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/state/user/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/versions/[^/]+/export$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_version": "1.2",
            "project": {"_id": "66aa00000000000000000009", "name": "Audio bot"},
            "version": {"_id": "66bb00000000000000000009", "name": "Published"},
            "diagrams": {},
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prompts/welcome.mp3"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "audio/mpeg")
                .set_body_bytes(MP3),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prompts/broken.mp3"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ID3 not really an mp3".to_vec()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prompts/slow.mp3"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(MP3)
                .set_delay(Duration::from_secs(8)),
        )
        .mount(&server)
        .await;
    let mut launch = prompts(&server.uri());
    launch.extend([
        json!({"type": "choice", "payload": {"buttons": [
            {"name": "Accept", "request": {"type": "path-yes", "payload": {"label": "Accept"}}},
            {"name": "Reject", "request": {"type": "path-no", "payload": {"label": "Reject"}}}
        ]}}),
        json!({"type": "no-reply", "payload": {"timeout": 10}}),
    ]);
    Mock::given(method("POST"))
        .and(path_regex(r"^/state/user/[0-9a-f]{32}/interact$"))
        .and(body_partial_json(json!({"action": {"type": "launch"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(launch)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/state/user/[0-9a-f]{32}/interact$"))
        .and(body_partial_json(json!({"action": {"type": "path-yes"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"type": "accept", "payload": {}, "paths": [{"event": {"type": "done"}}], "defaultPath": 0},
            {"type": "speak", "payload": {"type": "message", "message": "Thanks, goodbye."}},
            {"type": "end"}
        ])))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_and_data_uri_audio_is_played_from_the_gateway_and_broken_audio_is_said() {
    let plays = audio_call(Options::default()).await;
    assert_eq!(plays.len(), 2);
}

/// On Redis, a converted clip is also kept there, so that any replica serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_converted_audio_is_served_by_every_replica() {
    let redis = RedisServer::start();
    let opts = || {
        Options::with_store(StoreKind::Redis {
            url: redis.url(),
            prefix: "t".into(),
        })
    };
    let plays = audio_call(opts()).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for url in &plays {
        let name = url.rsplit('/').next().unwrap();
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("t:audio:{name}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 3_600_000, "kept with a TTL: {name} {ttl}");
    }
    // A clip another replica converted (in Redis, not in this process).
    let other = ivr_gateway::audio::silence_wav(2);
    let () = redis::cmd("SET")
        .arg("t:audio:0123456789abcdef.wav")
        .arg(&other)
        .query_async(&mut conn)
        .await
        .unwrap();
    let app = spawn_app(opts()).await;
    let r = app
        .http
        .get(app.url("/audio/0123456789abcdef.wav"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), other.as_slice());
    let r = app
        .http
        .get(app.url("/audio/fedcba9876543210.wav"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Audio that cannot be fetched within the turn's budget is said as its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_too_slow_to_fetch_is_said_as_its_text_and_counted() {
    let server = voiceflow_with_audio(|base| {
        vec![json!({"type": "speak", "payload": {"type": "audio", "src": format!("{base}/prompts/slow.mp3"), "message": "The slow prompt."}})]
    })
    .await;
    let app = spawn_app(
        Options::default()
            .env("VOICEFLOW_RUNTIME_URL", &server.uri())
            .env("VOICEFLOW_API_URL", &server.uri()),
    )
    .await;
    register_audio_assistant(&app).await;
    app.sim.set_callee(&phone(1), Behaviour::accepts());
    let id = app
        .create_callout(&json!({
            "name": "Ticket 4714",
            "assistant": "audio",
            "contacts": [{"name": "Alice", "phone": phone(1)}],
            "policy": {"attempts_per_contact": 1},
        }))
        .await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    app.assert_no_protocol_errors();
    let plan = serde_json::to_value(&app.sim.calls()[0].dialplan)
        .unwrap()
        .to_string();
    assert!(plan.contains("The slow prompt."), "{plan}");
    assert!(!plan.contains("slow.mp3"), "{plan}");
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ivr_audio_fallbacks_total{reason=\"timeout\"}")),
        "{metrics}"
    );
}

async fn register_audio_assistant(app: &crate::helpers::TestApp) {
    let r = app
        .http
        .request(Method::POST, app.url("/v1/assistants"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "audio", "api_key": KEY, "version": "66bb00000000000000000009"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

/// A callout whose launch has the three audio traces: checks what the callee
/// got, and returns the URLs of the two converted clips it played.
async fn audio_call(opts: Options) -> Vec<String> {
    let server = voiceflow_with_audio(|base| {
        vec![
            json!({"type": "speak", "payload": {"type": "audio", "src": format!("{base}/prompts/welcome.mp3"), "message": "Welcome."}}),
            json!({"type": "speak", "payload": {"type": "audio", "src": wav_data_uri(), "message": "A ticket."}}),
            json!({"type": "speak", "payload": {"type": "audio", "src": format!("{base}/prompts/broken.mp3"), "message": "Press 1 to accept."}}),
        ]
    })
    .await;
    let app = spawn_app(
        opts.env("VOICEFLOW_RUNTIME_URL", &server.uri())
            .env("VOICEFLOW_API_URL", &server.uri()),
    )
    .await;
    register_audio_assistant(&app).await;
    app.sim.set_callee(&phone(1), Behaviour::accepts());
    let id = app
        .create_callout(&json!({
            "name": "Ticket 4713",
            "assistant": "audio",
            "contacts": [{"name": "Alice", "phone": phone(1)}],
            "policy": {"attempts_per_contact": 1},
        }))
        .await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    // The simulator fetched every PLAY and found a .wav it could play.
    app.assert_no_protocol_errors();

    let calls = app.sim.calls();
    let plan = &calls[0].dialplan;
    let audio_prefix = format!("{}/audio/", app.base.trim_end_matches('/'));
    let plays: Vec<String> = plan
        .verbs
        .iter()
        .filter_map(|v| match v {
            Verb::Play(p) if p.file_url.starts_with(&audio_prefix) && p.repeat.is_none() => {
                Some(p.file_url.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(plays.len(), 2, "the mp3 and the data: URI: {plan:?}");
    assert_ne!(plays[0], plays[1]);
    for url in &plays {
        let name = url.strip_prefix(&audio_prefix).unwrap();
        assert!(
            name.len() == 20 && name.ends_with(".wav"),
            "a content hash: {name}"
        );
        let r = app.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "audio/wav");
        let wav = r.bytes().await.unwrap();
        let spec = hound::WavReader::new(Cursor::new(wav)).unwrap().spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 8_000, 16)
        );
    }
    // The broken mp3 is said as its text; the converted ones are not.
    let plan_json: Value = serde_json::to_value(plan).unwrap();
    let text = plan_json.to_string();
    assert!(text.contains("Press 1 to accept."), "{text}");
    assert!(!text.contains("Welcome."), "{text}");
    assert!(!text.contains("broken.mp3"), "{text}");
    // Counted for the operator.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ivr_audio_fallbacks_total{reason=\"undecodable\"}")),
        "{metrics}"
    );
    plays
}
