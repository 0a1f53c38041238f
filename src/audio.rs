//! Audio the gateway serves itself, for Routee's `PLAY` (reference §3.3: `.wav`
//! files only; 8 kHz mono 16-bit PCM is what telephony plays without resampling).
//!
//! Today that is one clip: a second of silence. Wherever the gateway waits for a
//! key, it plays that clip with `bargeIn: true` and `repeat` (instead of a
//! `PAUSE`), because Routee posts the tones only when a key interrupts a barge-in
//! verb (or on `#`, or at the end of the call): a key pressed during a `PAUSE` is
//! gathered but not posted, and the callee would hear nothing happen.
//!
//! The clip is served unauthenticated at `GET /audio/{name}`, where the name is
//! the first 16 hex digits of the SHA-256 of its bytes: the URL says exactly what
//! it serves, so it can be cached for ever (`immutable`), and nothing else can be
//! fetched through it.
//!
//! The WAV is written with `hound` (a maintained, dependency-free WAV codec)
//! rather than by hand: it gets the RIFF sizes and the `fmt ` chunk right.
//!
//! # Voiceflow's audio
//!
//! A Voiceflow audio trace whose `src` Routee cannot play (an `.mp3` URL, a
//! `data:audio/mpeg` or `data:audio/wav` URI) is converted here: fetched (at most
//! [`MAX_SOURCE_BYTES`], through the SSRF-guarded outbound client), decoded with
//! `symphonia` (pure Rust; no ffmpeg process), mixed down to mono, resampled to
//! 8 kHz (a box-filtered linear resampler in code: averaging the source samples
//! an output sample covers is the anti-aliasing a 5x downsampling needs, and
//! speech needs no more), written as 16-bit PCM WAV and kept in [`CACHE`] under
//! its content hash, served like the silence clip. The cache is per process,
//! bounded in bytes ([`MAX_CACHE_BYTES`]) and in age ([`CACHE_TTL`]); a source
//! already converted is not fetched again. With the Redis store each new clip
//! is also written to Redis (same TTL), so `GET /audio/{name}` answers on any
//! replica behind the load balancer, not only on the one that converted it.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use sha2::{Digest, Sha256};

/// Telephony's sample rate.
pub const SAMPLE_RATE: u32 = 8_000;

/// Length of the silence clip; a wait of `n` seconds plays it `n` times.
pub const SILENCE_CLIP_S: u32 = 1;

/// A WAV file and its content-addressed name.
#[derive(Debug)]
pub struct Clip {
    bytes: Vec<u8>,
    file_name: String,
}

impl Clip {
    /// The clip's bytes (a complete `.wav` file).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `<16 hex digits of SHA-256>.wav`.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// Its URL under `public_url` (`PUBLIC_URL`).
    pub fn url(&self, public_url: &str) -> String {
        format!(
            "{}/audio/{}",
            public_url.trim_end_matches('/'),
            self.file_name
        )
    }

    fn from_wav(bytes: Vec<u8>) -> Self {
        let digest = Sha256::digest(&bytes);
        let file_name = format!("{}.wav", &hex::encode(digest)[..16]);
        Self { bytes, file_name }
    }
}

/// `seconds` of silence as 8 kHz mono 16-bit PCM WAV.
pub fn silence_wav(seconds: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    // Writing to memory cannot fail but for a size overflow, which a few
    // seconds of audio never reach.
    if let Ok(mut writer) = hound::WavWriter::new(&mut out, spec) {
        let mut samples = writer.get_i16_writer(SAMPLE_RATE * seconds);
        for _ in 0..SAMPLE_RATE * seconds {
            samples.write_sample(0);
        }
        let _ = samples.flush();
        let _ = writer.finalize();
    }
    out.into_inner()
}

/// The silence the gateway plays while it waits for a key.
pub fn silence() -> &'static Clip {
    // Immutable once built: a constant computed at first use, not shared state.
    static SILENCE: LazyLock<Clip> = LazyLock::new(|| Clip::from_wav(silence_wav(SILENCE_CLIP_S)));
    &SILENCE
}

/// The bytes of the clip served under `file_name`, if any: the silence, or a
/// converted clip still in the cache.
pub fn by_name(file_name: &str) -> Option<Vec<u8>> {
    let clip = silence();
    if clip.file_name() == file_name {
        return Some(clip.bytes().to_vec());
    }
    CACHE
        .lock()
        .ok()?
        .clip(file_name)
        .map(|c| c.bytes().to_vec())
}

/// Whether `name` could name a clip: `<16 lowercase hex digits>.wav`.
pub fn is_clip_name(name: &str) -> bool {
    name.strip_suffix(".wav").is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The largest audio source fetched or decoded (5 MB: minutes of mp3).
pub const MAX_SOURCE_BYTES: usize = 5 * 1024 * 1024;
/// The longest converted clip (a prompt, not a podcast): 2 minutes.
pub const MAX_CLIP_SECONDS: usize = 120;
/// How long a converted clip is served and reused.
pub const CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// The most converted audio kept in memory (about an hour of 8 kHz PCM).
pub const MAX_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Why an audio `src` could not be made playable.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("not a fetchable audio source")]
    Unsupported,
    #[error("audio source refused: {0}")]
    Refused(String),
    #[error("fetching the audio failed: {0}")]
    Fetch(String),
    #[error("audio source larger than {MAX_SOURCE_BYTES} bytes")]
    TooLarge,
    #[error("audio could not be decoded: {0}")]
    Decode(String),
}

impl AudioError {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            AudioError::Unsupported => "unsupported",
            AudioError::Refused(_) => "refused",
            AudioError::Fetch(_) => "fetch_error",
            AudioError::TooLarge => "too_large",
            AudioError::Decode(_) => "undecodable",
        }
    }
}

/// Whether the gateway converts `src` (rather than playing it as is or saying
/// the text): an `http(s)` `.mp3` URL, or a base64 `data:audio/mpeg|mp3|wav` URI.
pub fn is_convertible(src: &str) -> bool {
    data_uri_payload(src).is_some()
        || url::Url::parse(src).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.path().to_ascii_lowercase().ends_with(".mp3")
        })
}

fn data_uri_payload(src: &str) -> Option<&str> {
    let rest = src.strip_prefix("data:")?;
    let (meta, payload) = rest.split_once(',')?;
    let mut parts = meta.split(';');
    let mime = parts.next()?.trim().to_ascii_lowercase();
    let audio = matches!(
        mime.as_str(),
        "audio/mpeg" | "audio/mp3" | "audio/wav" | "audio/x-wav" | "audio/wave"
    );
    (audio && parts.any(|p| p.trim().eq_ignore_ascii_case("base64"))).then_some(payload)
}

/// Decodes an mp3 or WAV file into 8 kHz mono 16-bit PCM WAV.
pub fn convert(encoded: &[u8]) -> Result<Vec<u8>, AudioError> {
    let (samples, rate) = decode_mono(encoded)?;
    Ok(wav_8k(&resample(&samples, rate, SAMPLE_RATE)))
}

/// Every sample of the default audio track, channels averaged, and its rate.
fn decode_mono(encoded: &[u8]) -> Result<(Vec<f32>, u32), AudioError> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let bad = |e: Error| AudioError::Decode(e.to_string());
    let source = Box::new(Cursor::new(encoded.to_vec()));
    let mss = MediaSourceStream::new(source, Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &Hint::new(),
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(bad)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Decode("no audio track".into()))?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Decode("no audio parameters".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(bad)?;
    let track_id = track.id;
    let (mut mono, mut rate, mut interleaved) = (Vec::new(), 0u32, Vec::<f32>::new());
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(bad(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            // A corrupt frame is skipped, as players do.
            Err(Error::DecodeError(_)) => continue,
            Err(e) => return Err(bad(e)),
        };
        let channels = buf.spec().channels().count().max(1);
        rate = buf.spec().rate();
        interleaved.resize(buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut interleaved);
        mono.extend(
            interleaved
                .chunks(channels)
                .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32),
        );
        if rate > 0 && mono.len() > MAX_CLIP_SECONDS * rate as usize {
            return Err(AudioError::Decode(format!(
                "longer than {MAX_CLIP_SECONDS} s"
            )));
        }
    }
    if mono.is_empty() || rate == 0 {
        return Err(AudioError::Decode("no audio decoded".into()));
    }
    Ok((mono, rate))
}

/// `samples` at `from` Hz as `to` Hz. Downsampling averages the source
/// samples each output sample covers (a box low-pass against aliasing);
/// upsampling interpolates linearly.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || samples.is_empty() {
        return samples.to_vec();
    }
    let step = f64::from(from) / f64::from(to);
    let out_len = ((samples.len() as f64) / step).floor().max(1.0) as usize;
    let last = samples.len() - 1;
    (0..out_len)
        .map(|i| {
            let t = i as f64 * step;
            if step > 1.0 {
                let start = t.floor() as usize;
                let end = ((t + step).ceil() as usize).clamp(start + 1, samples.len());
                let window = &samples[start.min(last)..end];
                window.iter().sum::<f32>() / window.len() as f32
            } else {
                let j = (t.floor() as usize).min(last);
                let frac = (t - j as f64) as f32;
                let next = samples[(j + 1).min(last)];
                samples[j] + (next - samples[j]) * frac
            }
        })
        .collect()
}

/// 8 kHz mono 16-bit PCM WAV of `samples` (in -1.0..=1.0, clipped).
fn wav_8k(samples: &[f32]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    if let Ok(mut writer) = hound::WavWriter::new(&mut out, spec) {
        for s in samples {
            let _ = writer.write_sample((s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16);
        }
        let _ = writer.finalize();
    }
    out.into_inner()
}

/// Converted clips by file name, and which clip each source became.
struct Cache {
    clips: HashMap<String, (Arc<Clip>, Instant)>,
    sources: HashMap<String, String>,
    bytes: usize,
}

/// The converted clips of this process (see the module doc).
static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| {
    Mutex::new(Cache {
        clips: HashMap::new(),
        sources: HashMap::new(),
        bytes: 0,
    })
});

impl Cache {
    fn clip(&mut self, file_name: &str) -> Option<Arc<Clip>> {
        self.expire();
        self.clips.get(file_name).map(|(c, _)| Arc::clone(c))
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let bytes = &mut self.bytes;
        self.clips.retain(|_, (clip, at)| {
            let keep = now.duration_since(*at) < CACHE_TTL;
            if !keep {
                *bytes -= clip.bytes.len();
            }
            keep
        });
        let clips = &self.clips;
        self.sources.retain(|_, name| clips.contains_key(name));
    }

    fn insert(&mut self, source_key: String, clip: Arc<Clip>) {
        self.expire();
        // Oldest first out until the new clip fits.
        while self.bytes + clip.bytes.len() > MAX_CACHE_BYTES {
            let Some(oldest) = self
                .clips
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((old, _)) = self.clips.remove(&oldest) {
                self.bytes -= old.bytes.len();
            }
        }
        if !self.clips.contains_key(clip.file_name()) {
            self.bytes += clip.bytes.len();
        }
        self.sources
            .insert(source_key, clip.file_name().to_string());
        self.clips
            .insert(clip.file_name().to_string(), (clip, Instant::now()));
    }
}

/// Fetches and converts audio sources; cheap to clone.
#[derive(Debug, Clone)]
pub struct Converter {
    http: reqwest::Client,
    allow_internal: bool,
}

impl Converter {
    /// `http` should be [`crate::net::outbound_client`]; `allow_internal` as
    /// given to it (tests and the sandbox fetch from loopback).
    pub fn new(http: reqwest::Client, allow_internal: bool) -> Self {
        Self {
            http,
            allow_internal,
        }
    }

    /// The file name (`<hash>.wav`) of `src` converted, from the cache or
    /// fetched and decoded now (decoding on a blocking thread); with the clip
    /// when it was converted now (to be shared through the store).
    pub async fn convert_src(&self, src: &str) -> Result<(String, Option<Arc<Clip>>), AudioError> {
        let key = hex::encode(Sha256::digest(src.as_bytes()));
        if let Ok(mut cache) = CACHE.lock() {
            cache.expire();
            if let Some(name) = cache.sources.get(&key) {
                return Ok((name.clone(), None));
            }
        }
        let encoded = match data_uri_payload(src) {
            Some(payload) => {
                if payload.len() > MAX_SOURCE_BYTES * 4 / 3 + 4 {
                    return Err(AudioError::TooLarge);
                }
                base64::engine::general_purpose::STANDARD
                    .decode(payload.trim())
                    .map_err(|e| AudioError::Decode(e.to_string()))?
            }
            None if is_convertible(src) => self.fetch(src).await?,
            None => return Err(AudioError::Unsupported),
        };
        let wav = tokio::task::spawn_blocking(move || convert(&encoded))
            .await
            .map_err(|e| AudioError::Decode(e.to_string()))??;
        let clip = Arc::new(Clip::from_wav(wav));
        let name = clip.file_name().to_string();
        if let Ok(mut cache) = CACHE.lock() {
            cache.insert(key, Arc::clone(&clip));
        }
        Ok((name, Some(clip)))
    }

    async fn fetch(&self, src: &str) -> Result<Vec<u8>, AudioError> {
        let url = crate::net::check_outbound_url(src, self.allow_internal)
            .map_err(AudioError::Refused)?;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| AudioError::Fetch(crate::net::log_safe(&e.to_string(), 200)))?;
        if !response.status().is_success() {
            return Err(AudioError::Fetch(format!("status {}", response.status())));
        }
        let (body, cut) = crate::net::read_capped(response, MAX_SOURCE_BYTES)
            .await
            .map_err(|e| AudioError::Fetch(crate::net::log_safe(&e.to_string(), 200)))?;
        if cut {
            return Err(AudioError::TooLarge);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_silence_clip_is_one_second_of_8_khz_mono_pcm() {
        let clip = silence();
        let reader = hound::WavReader::new(Cursor::new(clip.bytes())).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 8_000, 16)
        );
        assert_eq!(reader.duration(), 8_000);
        // A 44-byte header and 2 bytes per sample.
        assert_eq!(clip.bytes().len(), 44 + 16_000);
        assert!(
            reader
                .into_samples::<i16>()
                .all(|s| s.is_ok_and(|s| s == 0))
        );
    }

    #[test]
    fn the_name_is_the_hash_of_the_content() {
        let clip = silence();
        let again = Clip::from_wav(silence_wav(SILENCE_CLIP_S));
        assert_eq!(clip.file_name(), again.file_name());
        assert_ne!(clip.file_name(), Clip::from_wav(silence_wav(2)).file_name());
        assert!(clip.file_name().ends_with(".wav"));
        assert_eq!(
            clip.url("https://gw.example.com/"),
            format!("https://gw.example.com/audio/{}", clip.file_name())
        );
        assert!(by_name(clip.file_name()).is_some());
        assert!(by_name("0000000000000000.wav").is_none());
        assert!(is_clip_name(clip.file_name()));
        for bad in [
            "56d4af65701c26df",
            "56D4AF65701C26DF.wav",
            "../x.wav",
            "56d4af65701c26d.wav",
        ] {
            assert!(!is_clip_name(bad), "{bad}");
        }
    }

    /// An 8 kHz mono 16-bit WAV's samples, checked to be that format.
    fn samples_8k(wav: &[u8]) -> Vec<i16> {
        let reader = hound::WavReader::new(Cursor::new(wav)).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 8_000, 16)
        );
        reader.into_samples::<i16>().map(Result::unwrap).collect()
    }

    /// Sign changes per second: twice the frequency of a pure tone.
    fn crossings_per_second(samples: &[i16]) -> f64 {
        let n = samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        n as f64 * 8_000.0 / samples.len() as f64
    }

    #[test]
    fn an_mp3_becomes_8_khz_mono_pcm_of_the_same_tone() {
        // Half a second of 440 Hz at 16 kHz mono, encoded with LAME (lameenc).
        let mp3 = include_bytes!("../tests/fixtures/tone-440hz-16k-mono.mp3");
        let samples = samples_8k(&convert(mp3).unwrap());
        // Half a second, give or take the encoder's padding frames.
        assert!(
            (3_500..=5_200).contains(&samples.len()),
            "{}",
            samples.len()
        );
        let middle = &samples[1_000..3_000];
        let hz = crossings_per_second(middle) / 2.0;
        assert!((420.0..460.0).contains(&hz), "{hz} Hz");
        let peak = middle.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((9_000..15_000).contains(&peak), "peak {peak}");
    }

    #[test]
    fn a_44_1_khz_stereo_wav_becomes_8_khz_mono() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for i in 0..44_100 {
            let t = f64::from(i) / 44_100.0;
            let s = (10_000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16;
            // The same tone on the left, silence on the right: the mix is half.
            w.write_sample(s).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let samples = samples_8k(&convert(&out.into_inner()).unwrap());
        assert!(
            (7_990..=8_000).contains(&samples.len()),
            "{}",
            samples.len()
        );
        let hz = crossings_per_second(&samples) / 2.0;
        assert!((290.0..310.0).contains(&hz), "{hz} Hz");
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((4_500..5_100).contains(&peak), "peak {peak}");
    }

    #[test]
    fn what_is_not_audio_is_an_error() {
        assert!(matches!(
            convert(b"ID3 this is not an mp3 at all"),
            Err(AudioError::Decode(_))
        ));
        let mut truncated = include_bytes!("../tests/fixtures/tone-440hz-16k-mono.mp3").to_vec();
        truncated.truncate(40);
        assert!(convert(&truncated).is_err());
    }

    #[test]
    fn resampling_keeps_the_duration() {
        let one_second = vec![0.5_f32; 22_050];
        let down = resample(&one_second, 22_050, 8_000);
        assert_eq!(down.len(), 8_000);
        assert!(down.iter().all(|s| (s - 0.5).abs() < 1e-6));
        assert_eq!(
            resample(&[0.0, 1.0], 4_000, 8_000),
            vec![0.0, 0.5, 1.0, 1.0]
        );
    }

    #[test]
    fn convertible_sources() {
        assert!(is_convertible("https://cdn.example.com/a/b.MP3?sig=1"));
        assert!(is_convertible("data:audio/mpeg;base64,SUQz"));
        assert!(is_convertible("data:audio/wav;base64,UklGRg=="));
        assert!(!is_convertible("data:audio/mpeg,SUQz"));
        assert!(!is_convertible("data:text/plain;base64,SUQz"));
        assert!(!is_convertible("https://cdn.example.com/a.wav"));
        assert!(!is_convertible("ftp://cdn.example.com/a.mp3"));
    }
}
