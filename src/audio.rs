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

use std::io::Cursor;
use std::sync::LazyLock;

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

/// The clip served under `file_name`, if any.
pub fn by_name(file_name: &str) -> Option<&'static Clip> {
    let clip = silence();
    (clip.file_name() == file_name).then_some(clip)
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
    }
}
