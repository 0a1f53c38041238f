//! Voiceflow audio made playable (issue 13 item 6): what converting a prompt
//! costs a turn the first time (decode, mix down, resample to 8 kHz, write the
//! WAV, cache it) and every time after (a cache hit), through the same
//! [`ivr_gateway::audio::Converter`] a turn uses, on `data:` URIs so that no
//! network time is counted. A 5-second 44.1 kHz stereo WAV stands for a long
//! prompt; the half-second mp3 fixture for the mp3 decoder.

use std::io::Cursor;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ivr_gateway::audio::Converter;

pub struct AudioReport {
    /// First conversions of a 5 s 44.1 kHz stereo WAV (each a different one).
    pub wav_cold: Vec<Duration>,
    /// First conversions of the 0.5 s mp3 fixture (each URI made distinct).
    pub mp3_cold: Vec<Duration>,
    /// The same sources again: cache hits.
    pub cached: Vec<Duration>,
}

const MP3: &[u8] = include_bytes!("../../tests/fixtures/tone-440hz-16k-mono.mp3");

fn wav_5s_stereo(hz: f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    if let Ok(mut w) = hound::WavWriter::new(&mut out, spec) {
        for i in 0..44_100 * 5 {
            let t = f64::from(i) / 44_100.0;
            let s = (9_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
            let _ = w.write_sample(s);
            let _ = w.write_sample(s);
        }
        let _ = w.finalize();
    }
    out.into_inner()
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

pub async fn run(rounds: usize) -> anyhow::Result<AudioReport> {
    let converter = Converter::new(
        ivr_gateway::net::outbound_client(false, Duration::from_secs(5))?,
        false,
    );
    let mut report = AudioReport {
        wav_cold: Vec::new(),
        mp3_cold: Vec::new(),
        cached: Vec::new(),
    };
    let mut sources = Vec::new();
    for i in 0..rounds.max(1) * 3 {
        let wav = data_uri("audio/wav", &wav_5s_stereo(300.0 + i as f64));
        let started = Instant::now();
        converter.convert_src(&wav).await?;
        report.wav_cold.push(started.elapsed());
        // A distinct parameter makes each mp3 URI a new source, same audio.
        let mp3 = data_uri(&format!("audio/mpeg;n={i}"), MP3);
        let started = Instant::now();
        converter.convert_src(&mp3).await?;
        report.mp3_cold.push(started.elapsed());
        sources.extend([wav, mp3]);
    }
    for src in &sources {
        let started = Instant::now();
        converter.convert_src(src).await?;
        report.cached.push(started.elapsed());
    }
    eprintln!(
        "[audio] wav 5 s cold median {:?}, mp3 0.5 s cold median {:?}, cached median {:?}",
        median(&report.wav_cold),
        median(&report.mp3_cold),
        median(&report.cached)
    );
    Ok(report)
}
