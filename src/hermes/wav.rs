//! The audio frames of Hermes: each `hermes/audioServer/<site>/audioFrame` payload is a small
//! WAV file. This parses one, walking its chunks (the header is not assumed to be 44 bytes), into
//! mono samples at int16 scale.
//!
//! Accepted: PCM (format 1, or WAVE_FORMAT_EXTENSIBLE with a PCM sub-format) at 8, 16, 24 or 32
//! bits, 32-bit IEEE float (format 3; NaN and infinities become silence, huge values are
//! clipped), 1 to 16 channels (averaged to mono), any rate from 1000 to 384000 Hz. Every declared
//! size is checked against what the payload holds.

use anyhow::{bail, Result};

/// The largest payload accepted (1 MiB: about 30 s of 16 kHz 16-bit mono).
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// One parsed frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Samples per second.
    pub rate: u32,
    /// Mono samples, int16 scale.
    pub samples: Vec<f32>,
}

/// The `fmt ` chunk's fields that matter.
#[derive(Clone, Copy, Debug)]
struct Format {
    float: bool,
    channels: usize,
    rate: u32,
    bits: usize,
}

/// Parses one WAV payload; errors say what is wrong in one line.
pub fn parse(bytes: &[u8]) -> Result<Frame> {
    if bytes.len() > MAX_FRAME_BYTES {
        bail!(
            "WAV of {} bytes is over the {MAX_FRAME_BYTES}-byte cap",
            bytes.len()
        );
    }
    if bytes.len() < 12 {
        bail!(
            "WAV truncated: {} bytes, shorter than a RIFF header",
            bytes.len()
        );
    }
    if &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        bail!(
            "not a WAV file: starts with {:?}, not RIFF....WAVE",
            String::from_utf8_lossy(&bytes[0..12])
        );
    }
    let mut format = None;
    let mut at = 12;
    while at < bytes.len() {
        let (id, body) = chunk(bytes, at)?;
        match id {
            b"fmt " => format = Some(parse_format(body)?),
            b"data" => {
                let Some(f) = format else {
                    bail!("WAV has its data chunk before its fmt chunk");
                };
                return decode(f, body);
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at += 8 + body.len() + (body.len() & 1);
    }
    bail!("WAV has no data chunk")
}

/// The chunk at `at`: its id and body, checked against the payload's end.
fn chunk(bytes: &[u8], at: usize) -> Result<(&[u8; 4], &[u8])> {
    let rest = bytes.len() - at;
    if rest < 8 {
        bail!("WAV truncated: {rest} stray bytes at offset {at} where a chunk header should be");
    }
    let id: &[u8; 4] = bytes[at..at + 4].try_into().unwrap();
    let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    if size > rest - 8 {
        bail!(
            "WAV chunk {:?} at offset {at} declares {size} bytes but only {} remain",
            String::from_utf8_lossy(id),
            rest - 8
        );
    }
    Ok((id, &bytes[at + 8..at + 8 + size]))
}

/// Reads a `fmt ` chunk.
fn parse_format(b: &[u8]) -> Result<Format> {
    if b.len() < 16 {
        bail!("WAV fmt chunk of {} bytes is shorter than 16", b.len());
    }
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let mut tag = u16_at(0);
    if tag == 0xFFFE {
        if b.len() < 26 {
            bail!(
                "WAV extensible fmt chunk of {} bytes is shorter than 26",
                b.len()
            );
        }
        tag = u16_at(24);
    }
    let f = Format {
        float: tag == 3,
        channels: u16_at(2) as usize,
        rate: u32::from_le_bytes(b[4..8].try_into().unwrap()),
        bits: u16_at(14) as usize,
    };
    match (tag, f.bits) {
        (1, 8 | 16 | 24 | 32) | (3, 32) => {}
        (1 | 3, bits) => bail!("WAV sample width of {bits} bits is not supported (8, 16, 24, 32)"),
        (tag, _) => bail!("WAV format {tag} is not PCM (1) or float (3)"),
    }
    if !(1..=16).contains(&f.channels) {
        bail!("WAV with {} channels: 1 to 16 are supported", f.channels);
    }
    if !(1000..=384_000).contains(&f.rate) {
        bail!("WAV rate {} Hz is outside 1000..384000", f.rate);
    }
    Ok(f)
}

/// Decodes the data chunk to mono int16-scale samples.
fn decode(f: Format, data: &[u8]) -> Result<Frame> {
    let width = f.bits / 8;
    let block = width * f.channels;
    if !data.len().is_multiple_of(block) {
        bail!(
            "WAV data of {} bytes is not a whole number of {block}-byte frames",
            data.len()
        );
    }
    let sample = |s: &[u8]| -> f32 {
        match (width, f.float) {
            (1, _) => (s[0] as f32 - 128.0) * 256.0,
            (2, _) => i16::from_le_bytes([s[0], s[1]]) as f32,
            (3, _) => (i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as f32 / 256.0,
            (_, false) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f32 / 65536.0,
            (_, true) => sane(f32::from_le_bytes([s[0], s[1], s[2], s[3]]) * 32768.0),
        }
    };
    let samples = data
        .chunks_exact(block)
        .map(|frame| frame.chunks_exact(width).map(sample).sum::<f32>() / f.channels as f32)
        .collect();
    Ok(Frame {
        rate: f.rate,
        samples,
    })
}

/// A float sample made safe for the resampler, as hark's WAV reader does: NaN and infinities
/// become silence, magnitudes beyond [`FLOAT_LIMIT`](hark::audio::wav::FLOAT_LIMIT) are clipped.
fn sane(v: f32) -> f32 {
    use hark::audio::wav::FLOAT_LIMIT;
    if v.is_finite() {
        v.clamp(-FLOAT_LIMIT, FLOAT_LIMIT)
    } else {
        0.0
    }
}

/// A WAV payload of 16-bit PCM (what Rhasspy's audio servers send), for the tests.
#[cfg(test)]
pub fn encode_16(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(&fmt_chunk(1, channels, rate, 16));
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// A 16-byte `fmt ` chunk, header included.
#[cfg(test)]
fn fmt_chunk(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut c = b"fmt ".to_vec();
    c.extend_from_slice(&16u32.to_le_bytes());
    c.extend_from_slice(&tag.to_le_bytes());
    c.extend_from_slice(&channels.to_le_bytes());
    c.extend_from_slice(&rate.to_le_bytes());
    c.extend_from_slice(&(rate * align as u32).to_le_bytes());
    c.extend_from_slice(&align.to_le_bytes());
    c.extend_from_slice(&bits.to_le_bytes());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV from raw chunks (id, body), the RIFF size filled in.
    fn riff(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        for (id, b) in chunks {
            body.extend_from_slice(*id);
            body.extend_from_slice(&(b.len() as u32).to_le_bytes());
            body.extend_from_slice(b);
            if b.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> (&'static [u8; 4], Vec<u8>) {
        (b"fmt ", fmt_chunk(tag, channels, rate, bits)[8..].to_vec())
    }

    fn err(bytes: &[u8]) -> String {
        parse(bytes).unwrap_err().to_string()
    }

    #[test]
    fn the_usual_rhasspy_frame_parses() {
        let x: Vec<i16> = (0..512).map(|i| (i * 37 % 2000) as i16 - 1000).collect();
        let f = parse(&encode_16(&x, 16000, 1)).unwrap();
        assert_eq!(f.rate, 16000);
        assert_eq!(f.samples, x.iter().map(|&s| s as f32).collect::<Vec<_>>());
    }

    #[test]
    fn every_width_and_channel_count_comes_out_mono_at_int16_scale() {
        // Stereo 8-bit: (255, 1) -> mean of 127*256 and -127*256 = 0; (192, 192) -> 64*256.
        let f = parse(&riff(&[
            fmt(1, 2, 8000, 8),
            (b"data", vec![255, 1, 192, 192]),
        ]))
        .unwrap();
        assert_eq!((f.rate, f.samples), (8000, vec![0.0, 16384.0]));
        // 24-bit: 0x123456 / 256 and -1 / 256.
        let f = parse(&riff(&[
            fmt(1, 1, 48000, 24),
            (b"data", vec![0x56, 0x34, 0x12, 0xFF, 0xFF, 0xFF]),
        ]))
        .unwrap();
        assert_eq!(f.samples, vec![0x123456 as f32 / 256.0, -1.0 / 256.0]);
        // 32-bit int and float.
        let f = parse(&riff(&[
            fmt(1, 1, 22050, 32),
            (b"data", (-65536i32 * 300).to_le_bytes().to_vec()),
        ]))
        .unwrap();
        assert_eq!(f.samples, vec![-300.0]);
        let f = parse(&riff(&[
            fmt(3, 1, 44100, 32),
            (b"data", 0.5f32.to_le_bytes().to_vec()),
        ]))
        .unwrap();
        assert_eq!((f.rate, f.samples), (44100, vec![16384.0]));
    }

    /// Found by `tests/fuzz` (hermes_wav, corpus/hermes_wav/float_nan_inf.wav): NaN, Inf and
    /// 1e35 float samples came out as they were and would have reached the resampler.
    #[test]
    fn float_nan_inf_and_huge_samples_are_made_safe() {
        // 1e35 * 32768 overflows f32 (infinite, so silence); -1e30 is clipped.
        let data = [0.5f32, f32::NAN, f32::INFINITY, 1e35, -1e30];
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f = parse(&riff(&[fmt(3, 1, 44100, 32), (b"data", bytes)])).unwrap();
        let limit = hark::audio::wav::FLOAT_LIMIT;
        assert_eq!(f.samples, vec![16384.0, 0.0, 0.0, 0.0, -limit]);
    }

    #[test]
    fn extra_chunks_odd_padding_and_a_long_fmt_are_walked_over() {
        let mut long_fmt = fmt(1, 1, 16000, 16);
        long_fmt.1.extend_from_slice(&[0, 0]); // cbSize = 0, an 18-byte fmt
        let w = riff(&[
            (b"LIST", vec![1, 2, 3]), // odd: one pad byte follows
            long_fmt,
            (b"fact", vec![9; 4]),
            (b"data", vec![1, 0, 2, 0]),
            (b"junk", vec![7]),
        ]);
        assert_eq!(parse(&w).unwrap().samples, vec![1.0, 2.0]);
    }

    #[test]
    fn bad_frames_are_clear_errors() {
        let good = encode_16(&[1, 2, 3], 16000, 1);
        assert!(err(&good[..8]).contains("shorter than a RIFF header"));
        assert!(err(&good[..good.len() - 1]).contains("declares 6 bytes but only 5 remain"));
        assert!(err(&good[..38]).contains("stray bytes"));
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(b"OggS");
        assert!(err(&bad).contains("not a WAV file"));
        let mut huge = good.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(err(&huge).contains("\"fmt \" at offset 12 declares 4294967295 bytes"));
        let mut huge_data = good.clone();
        huge_data[40..44].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
        assert!(err(&huge_data).contains("\"data\" at offset 36 declares"));
        assert!(err(&vec![0; MAX_FRAME_BYTES + 1]).contains("over the 1048576-byte cap"));
        assert!(
            err(&riff(&[(b"data", vec![0, 0]), fmt(1, 1, 16000, 16)])).contains("before its fmt")
        );
        assert!(err(&riff(&[fmt(1, 1, 16000, 16)])).contains("no data chunk"));
        assert!(err(&riff(&[fmt(1, 2, 16000, 16), (b"data", vec![0; 6])]))
            .contains("whole number of 4-byte"));
        assert!(err(&riff(&[fmt(2, 1, 16000, 16), (b"data", vec![])])).contains("format 2"));
        assert!(err(&riff(&[fmt(1, 1, 16000, 12), (b"data", vec![])])).contains("12 bits"));
        assert!(err(&riff(&[fmt(1, 0, 16000, 16), (b"data", vec![])])).contains("0 channels"));
        assert!(err(&riff(&[fmt(1, 1, 10, 16), (b"data", vec![])])).contains("rate 10 Hz"));
        assert!(
            err(&riff(&[(b"fmt ", vec![1, 0, 1, 0]), (b"data", vec![])]))
                .contains("shorter than 16")
        );
    }
}
