//! The source's sound in the output: copied packet for packet when the container can hold its
//! codec, else decoded and encoded again with the container's usual sound codec. Sound is
//! written interleaved with the video, up to the time the video has reached.

use std::path::Path;

use ffmpeg::{codec, decoder, encoder, filter, format, frame, media, Packet, Rational};
use ffmpeg_next as ffmpeg;

use super::video_error;
use crate::error::{Error, Result};

/// Sound that starts less than this before the first frame (seconds) starts with it, as it
/// did before leads were kept: a note about "0.000 s" would help nobody.
const MIN_LEAD_SECONDS: f64 = 0.001;

/// Whether a muxer can hold a codec.
pub(crate) unsafe fn query(muxer: *const ffmpeg::ffi::AVOutputFormat, id: codec::Id) -> bool {
    ffmpeg::ffi::avformat_query_codec(muxer, id.into(), ffmpeg::ffi::FF_COMPLIANCE_NORMAL) == 1
}

/// Whether the `container` muxer takes the sound as it is: some say they can hold a codec and
/// then refuse it when the file is started (FLAC in MP4 is "experimental", Opus or FLAC in
/// MOV invalid).
fn copy_is_accepted(container: &str, parameters: &codec::Parameters) -> bool {
    super::muxer_accepts(container, parameters.clone()).is_ok()
}

/// The encoder for a sound codec, preferring the usual library over experimental native ones.
fn sound_encoder(id: codec::Id) -> Option<ffmpeg::Codec> {
    let preferred = match id {
        codec::Id::OPUS => Some("libopus"),
        codec::Id::VORBIS => Some("libvorbis"),
        codec::Id::MP3 => Some("libmp3lame"),
        _ => None,
    };
    preferred
        .and_then(encoder::find_by_name)
        .or_else(|| encoder::find(id))
}

enum Mode {
    Copy,
    Encode {
        decoder: decoder::Audio,
        encoder: encoder::Audio,
        graph: filter::Graph,
        /// Output time of the next sample, in samples (the encoder's time base); set from the
        /// first decoded frame's time so that sound that starts late stays in sync.
        samples: Option<i64>,
        /// The first packet's output time (seconds), for a decoder that gives its frames no
        /// times.
        first_packet: Option<f64>,
        /// Output time (seconds) at which the last decoded frame ended: the next one's time
        /// where the decoder gives none.
        decoded_until: Option<f64>,
    },
}

/// Sound carried over from the source.
pub(crate) struct Sound {
    input: format::context::Input,
    in_stream: usize,
    in_time_base: Rational,
    out_stream: usize,
    /// Source time (in its time base) that becomes 0 in the output.
    start: i64,
    mode: Mode,
    done: bool,
    /// A packet read that starts after the time written so far: the next call's first.
    pending: Option<Packet>,
    /// Whether the output starts with the source (see [`Sound::add`]).
    from_start: bool,
    /// Added to every sound packet's time (in the time base it is written from): the codec
    /// delay that an old Matroska muxer leaves out (see [`matroska_codec_delay`]).
    delay_fix: i64,
    /// Whether the sound is cut at the start's own sample (see [`cuts_exactly`]) rather than
    /// at the first packet that starts after it.
    exact_start: bool,
    /// While `exact_start`: the last packet read that ends before the start. It goes to the
    /// decoder (or the file) just before the first packet kept, since a decoder of overlapping
    /// transforms (AAC, Opus, Vorbis) gives a packet's first samples right only after the
    /// packet before it.
    preroll: Option<Packet>,
}

/// Whether the sound of an output that starts after the source's first frame (`from_start`
/// false) is cut at the start's own sample: always when it is encoded again (its decoded
/// samples before the start are dropped), and when it is copied into MP4 or MOV, whose edit
/// list hides the part of a packet before the start. A copy into Matroska or WebM, which have
/// no such list, starts with the first packet that starts in the output: up to one packet
/// (21 ms of AAC, 20 ms of Opus) after the first frame, in sync.
fn cuts_exactly(from_start: bool, copied: bool, container: &str) -> bool {
    !from_start && (!copied || matches!(container, "mp4" | "mov"))
}

impl Sound {
    /// Adds the sound of `input` to `output` (before its header is written). `start_seconds` of
    /// source time (the first frame's) becomes 0, unless the output starts with the source
    /// (`from_start`) and the sound starts before its first frame: then the sound's start
    /// becomes 0 and the picture starts later by the returned lead (seconds), as in the source.
    /// Returns the sound, how it is carried ("copied" or "re-encoded as ...") and the lead.
    pub fn add(
        input: &Path,
        output: &mut format::context::Output,
        start_seconds: f64,
        from_start: bool,
    ) -> Result<(Self, String, f64)> {
        let source = format::input(&input)
            .map_err(|e| video_error(input, "cannot reopen it for its sound", e))?;
        let stream = source
            .streams()
            .best(media::Type::Audio)
            .ok_or_else(|| Error::video(input, "its sound stream went missing"))?;
        let (in_stream, in_time_base) = (stream.index(), stream.time_base());
        // Sound before time 0 is a codec's delay (Opus's pre-skip in WebM and Matroska, AAC's
        // priming where no edit list hides it), which players drop: it is no lead.
        let first = stream.start_time();
        let sound_start = (first != ffmpeg::ffi::AV_NOPTS_VALUE)
            .then(|| to_seconds(first, in_time_base).max(0.0))
            .filter(|s| from_start && start_seconds - s >= MIN_LEAD_SECONDS);
        let (start, lead) = match sound_start {
            Some(sound) => (to_units(sound, in_time_base), start_seconds - sound),
            None => (to_units(start_seconds, in_time_base), 0.0),
        };
        let tracks = source
            .streams()
            .filter(|s| s.parameters().medium() == media::Type::Audio)
            .count();
        let parameters = stream.parameters();
        let id = parameters.id();
        let muxer = unsafe { (*output.as_ptr()).oformat };
        let global_header = output
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER);
        let fail = |what: &str, e: ffmpeg::Error| video_error(input, what, e);
        let container = output.format().name().to_string();
        let copy = unsafe { query(muxer, id) } && copy_is_accepted(&container, &parameters);
        // The trial's refusal (logged) explains nothing that follows.
        super::clear_explanation();
        let (mode, out_stream, plan, delay_fix) = if copy {
            let mut ost = output
                .add_stream(encoder::find(codec::Id::None))
                .map_err(|e| fail("cannot add the sound stream", e))?;
            ost.set_parameters(parameters.clone());
            unsafe {
                (*ost.parameters().as_mut_ptr()).codec_tag = 0;
            }
            let fix = matroska_codec_delay(&container, &parameters, in_time_base);
            (Mode::Copy, ost.index(), "copied".to_string(), fix)
        } else {
            let target = unsafe { (*muxer).audio_codec };
            let target_id = codec::Id::from(target);
            let codec = sound_encoder(target_id)
                .filter(|_| target_id != codec::Id::None)
                .ok_or_else(|| {
                    Error::video(input, "the output container takes no sound this ffmpeg can encode; use --no-audio")
                })?;
            let audio = codec
                .audio()
                .map_err(|e| fail("the container's sound codec is not a sound codec", e))?;
            let mut decoder = codec::context::Context::from_parameters(parameters)
                .map_err(|e| fail("cannot read the sound's parameters", e))?
                .decoder()
                .audio()
                .map_err(|e| fail("no decoder for the sound", e))?;
            decoder
                .set_parameters(stream.parameters())
                .map_err(|e| fail("sound parameters", e))?;
            // Frames then come out with the packets' times, moved past the samples the codec
            // drops (Opus's pre-skip, AAC's priming): the first one is the sound's start.
            decoder.set_packet_time_base(in_time_base);
            let mut ost = output
                .add_stream(codec)
                .map_err(|e| fail("cannot add the sound stream", e))?;
            let mut enc = codec::context::Context::new_with_codec(codec)
                .encoder()
                .audio()
                .map_err(|e| fail("cannot set up the sound encoder", e))?;
            let opus = target_id == codec::Id::OPUS;
            let channels = layout_of(&decoder).channels();
            let layout = audio
                .channel_layouts()
                .map(|l| l.best(channels))
                .or_else(|| opus_layout(channels).filter(|_| opus))
                .unwrap_or_else(|| layout_of(&decoder));
            // Opus at 48 kHz: encoded at a lower rate, its codec delay is written short in
            // Matroska by FFmpeg 5.1 (counted at 48 kHz) and the sound came up to 5.8 ms late.
            let rate = if opus {
                48000
            } else {
                audio
                    .rates()
                    .map(|mut r| {
                        let all: Vec<i32> = r.by_ref().collect();
                        if all.contains(&(decoder.rate() as i32)) {
                            decoder.rate() as i32
                        } else {
                            all.iter().copied().max().unwrap_or(48000)
                        }
                    })
                    .unwrap_or(decoder.rate() as i32)
            };
            let sample_format = audio
                .formats()
                .and_then(|mut f| f.next())
                .unwrap_or(decoder.format());
            enc.set_rate(rate);
            enc.set_channel_layout(layout);
            enc.set_channels(layout.channels());
            enc.set_format(sample_format);
            enc.set_bit_rate(160_000);
            enc.set_time_base((1, rate));
            if global_header {
                enc.set_flags(codec::Flags::GLOBAL_HEADER);
            }
            let enc = enc
                .open_as(codec)
                .map_err(|e| fail("cannot open the sound encoder", e))?;
            ost.set_parameters(&enc);
            ost.set_time_base((1, rate));
            let fix = matroska_codec_delay(&container, &ost.parameters(), Rational::new(1, rate));
            let graph =
                resampler(&decoder, &enc).map_err(|e| fail("cannot convert the sound", e))?;
            let name = codec.name().to_string();
            (
                Mode::Encode {
                    decoder,
                    encoder: enc,
                    graph,
                    samples: None,
                    first_packet: None,
                    decoded_until: None,
                },
                ost.index(),
                format!("re-encoded as {name} (the container cannot hold {id:?})"),
                fix,
            )
        };
        // Only the main track is carried over: say so when there are others.
        let plan = if tracks > 1 {
            format!(
                "{plan} (stream #{in_stream}; {} other sound track(s) left out)",
                tracks - 1
            )
        } else {
            plan
        };
        let exact_start = cuts_exactly(from_start, matches!(mode, Mode::Copy), &container);
        Ok((
            Sound {
                input: source,
                in_stream,
                in_time_base,
                out_stream,
                start,
                mode,
                done: false,
                pending: None,
                from_start,
                delay_fix,
                exact_start,
                preroll: None,
            },
            plan,
            lead,
        ))
    }

    /// Moves the source time that becomes 0 by `seconds` (later when positive): where the
    /// picture's lead was rounded to the encoder's unit, the sound follows it.
    pub fn move_start(&mut self, seconds: f64) {
        self.start += to_units(seconds, self.in_time_base);
    }

    /// Writes the sound that starts before `seconds` of output time (its last packet may end
    /// after it); a packet that starts later waits for the next call.
    pub fn write_until(
        &mut self,
        output: &mut format::context::Output,
        seconds: f64,
        path: &Path,
    ) -> Result<()> {
        let mut errors = 0;
        loop {
            let packet = match self.pending.take() {
                Some(packet) => packet,
                None if self.done => break,
                None => {
                    let mut packet = Packet::empty();
                    match packet.read(&mut self.input) {
                        Ok(()) => errors = 0,
                        Err(ffmpeg::Error::Eof) => {
                            self.done = true;
                            self.flush(output, path)?;
                            break;
                        }
                        // Damaged data is skipped, up to a point: a file that keeps failing
                        // ends its sound there.
                        Err(_) if errors < super::MAX_READ_ERRORS => {
                            errors += 1;
                            continue;
                        }
                        Err(_) => {
                            self.done = true;
                            self.flush(output, path)?;
                            break;
                        }
                    }
                    packet
                }
            };
            if packet.stream() != self.in_stream {
                continue;
            }
            let Some(pts) = packet.pts().or(packet.dts()) else {
                continue;
            };
            // A packet that starts before the start is left out, unless it ends after it and
            // the output starts with the source (the first packet of a codec with a delay, Opus,
            // holds the samples its decoder drops, and then sound the output needs) or the
            // sound is cut at the start's own sample.
            if pts < self.start {
                let ends_after = pts + packet.duration() > self.start;
                if !(ends_after && (self.from_start || self.exact_start)) {
                    if self.exact_start {
                        self.preroll = Some(packet);
                    }
                    continue;
                }
            }
            let at = to_seconds(pts - self.start, self.in_time_base);
            if at >= seconds {
                self.pending = Some(packet);
                break;
            }
            if let Some(preroll) = self.preroll.take() {
                // Only the packet just before this one (sound that starts after the start has
                // no use for one from before a gap): ending less than half its length before
                // this one starts (millisecond times round), or of unknown length.
                let length = preroll.duration();
                let end = preroll.pts().or(preroll.dts()).unwrap_or(pts) + length;
                if length <= 0 || end + length / 2 >= pts {
                    self.put(output, preroll, path)?;
                }
            }
            self.put(output, packet, path)?;
        }
        Ok(())
    }

    /// Writes one packet of the source's sound stream (copied or through the encoder).
    fn put(
        &mut self,
        output: &mut format::context::Output,
        mut packet: Packet,
        path: &Path,
    ) -> Result<()> {
        let out_time_base = output.stream(self.out_stream).expect("added").time_base();
        match &mut self.mode {
            Mode::Copy => {
                let shift = |t: Option<i64>| t.map(|t| t - self.start + self.delay_fix);
                packet.set_pts(shift(packet.pts()));
                packet.set_dts(shift(packet.dts()));
                packet.set_stream(self.out_stream);
                packet.set_position(-1);
                packet.rescale_ts(self.in_time_base, out_time_base);
                super::clear_explanation();
                packet
                    .write_interleaved(output)
                    .map_err(|e| video_error(path, "cannot write a sound packet", e))?;
            }
            Mode::Encode {
                decoder,
                first_packet,
                ..
            } => {
                if first_packet.is_none() {
                    let pts = packet.pts().or(packet.dts()).unwrap_or(self.start);
                    *first_packet = Some(to_seconds(pts - self.start, self.in_time_base));
                }
                // Damaged sound packets are skipped.
                if decoder.send_packet(&packet).is_ok() {
                    self.encode_ready(output, path, false)?;
                }
            }
        }
        Ok(())
    }

    /// Moves decoded sound through the converter and the encoder into the file.
    fn encode_ready(
        &mut self,
        output: &mut format::context::Output,
        path: &Path,
        flushing: bool,
    ) -> Result<()> {
        super::clear_explanation();
        let (out_stream, start, in_time_base) = (self.out_stream, self.start, self.in_time_base);
        let (delay_fix, exact_start) = (self.delay_fix, self.exact_start);
        let Mode::Encode {
            decoder,
            encoder,
            graph,
            samples,
            first_packet,
            decoded_until,
        } = &mut self.mode
        else {
            return Ok(());
        };
        let fail = |what: &str, e: ffmpeg::Error| video_error(path, what, e);
        let mut decoded = frame::Audio::empty();
        // A damaged sound frame is skipped rather than ending the sound.
        let rate = f64::from(encoder.rate());
        while super::ready(decoder.receive_frame(&mut decoded)).unwrap_or(false) {
            let decoded_rate = f64::from(decoded.rate().max(1));
            // The frame's output time: its own, else where the one before ended.
            let mut time = decoded
                .pts()
                .map(|pts| to_seconds(pts - start, in_time_base))
                .or(*decoded_until)
                .or(*first_packet)
                .unwrap_or(0.0);
            let count = decoded.samples();
            *decoded_until = Some(time + count as f64 / decoded_rate);
            if exact_start && time < 0.0 {
                // Sound from before the start (the packet decoded ahead of it, and the part of
                // the one the start falls in) is cut at the start's sample.
                let cut = (-time * decoded_rate).round() as usize;
                if cut >= count {
                    continue;
                }
                if cut > 0 {
                    drop_first(&mut decoded, cut).map_err(|e| fail("cannot cut the sound", e))?;
                    time += cut as f64 / decoded_rate;
                    if let Some(pts) = decoded.pts() {
                        let moved = to_units(cut as f64 / decoded_rate, in_time_base);
                        decoded.set_pts(Some(pts + moved));
                    }
                }
            }
            if samples.is_none() {
                *samples = Some((time * rate).round() as i64);
            }
            graph
                .get("in")
                .expect("made")
                .source()
                .add(&decoded)
                .map_err(|e| fail("cannot convert the sound", e))?;
        }
        if flushing {
            let _ = graph.get("in").expect("made").source().flush();
        }
        let encoder_time_base = encoder.time_base();
        let out_time_base = output.stream(out_stream).expect("added").time_base();
        let mut write = |encoder: &mut encoder::Audio| {
            write_packets(
                encoder,
                output,
                (out_stream, delay_fix),
                encoder_time_base,
                out_time_base,
                path,
            )
        };
        let mut converted = frame::Audio::empty();
        while graph
            .get("out")
            .expect("made")
            .sink()
            .frame(&mut converted)
            .is_ok()
        {
            let next = samples.get_or_insert(0);
            converted.set_pts(Some(*next));
            *next += converted.samples() as i64;
            encoder
                .send_frame(&converted)
                .map_err(|e| fail("the sound encoder refused a frame", e))?;
            write(encoder)?;
        }
        if flushing {
            let _ = encoder.send_eof();
            write(encoder)?;
        }
        Ok(())
    }

    fn flush(&mut self, output: &mut format::context::Output, path: &Path) -> Result<()> {
        if let Mode::Encode { decoder, .. } = &mut self.mode {
            let _ = decoder.send_eof();
            self.encode_ready(output, path, true)?;
        }
        Ok(())
    }

    /// Ends the sound at `seconds` of output time (or writes all of it when infinite).
    pub fn finish(
        &mut self,
        output: &mut format::context::Output,
        seconds: f64,
        path: &Path,
    ) -> Result<()> {
        self.write_until(output, seconds, path)?;
        if !self.done {
            self.done = true;
            self.flush(output, path)?;
        }
        Ok(())
    }
}

/// Removes the first `cut` samples of `frame`, which has more.
fn drop_first(frame: &mut frame::Audio, cut: usize) -> Result<(), ffmpeg::Error> {
    let remaining = frame.samples() - cut;
    let (channels, format) = (i32::from(frame.channels()), frame.format().into());
    unsafe {
        let f = frame.as_mut_ptr();
        let made = ffmpeg::ffi::av_frame_make_writable(f);
        if made < 0 {
            return Err(ffmpeg::Error::from(made));
        }
        // The same planes as source and destination: the samples move down (a memmove).
        let planes = (*f).extended_data;
        let moved = ffmpeg::ffi::av_samples_copy(
            planes,
            planes as *const *mut u8,
            0,
            cut as std::ffi::c_int,
            remaining as std::ffi::c_int,
            channels,
            format,
        );
        if moved < 0 {
            return Err(ffmpeg::Error::from(moved));
        }
    }
    frame.set_samples(remaining);
    Ok(())
}

/// `time` in `time_base` units, in seconds.
fn to_seconds(time: i64, time_base: Rational) -> f64 {
    time as f64 * f64::from(time_base)
}

/// `seconds` in the nearest whole number of `time_base` units.
fn to_units(seconds: f64, time_base: Rational) -> i64 {
    (seconds / f64::from(time_base)).round() as i64
}

/// Writes what the encoder has ready into `stream` of `output`, each packet's time moved by
/// `delay_fix` (in the encoder's time base, `from`).
fn write_packets(
    encoder: &mut encoder::Audio,
    output: &mut format::context::Output,
    (stream, delay_fix): (usize, i64),
    from: Rational,
    to: Rational,
    path: &Path,
) -> Result<()> {
    let mut packet = Packet::empty();
    while super::ready(encoder.receive_packet(&mut packet))
        .map_err(|e| video_error(path, "the sound encoder failed", e))?
    {
        packet.set_stream(stream);
        packet.set_pts(packet.pts().map(|t| t + delay_fix));
        packet.set_dts(packet.dts().map(|t| t + delay_fix));
        packet.rescale_ts(from, to);
        super::clear_explanation();
        packet
            .write_interleaved(output)
            .map_err(|e| video_error(path, "cannot write a sound packet", e))?;
    }
    Ok(())
}

/// The codec delay (in `time_base`) that the Matroska muxer of FFmpeg 5.1 and before leaves out of
/// an Opus track's times in `container`, else 0. That muxer writes the CodecDelay element but
/// not the times it implies, and then moves every track later by the delay to keep the first
/// packet at 0 or after: the picture ends up 7 ms late against the sound, in any player and
/// once more at every pass (Ladybird's media library corrects such files on reading). Adding
/// the delay to the sound's times writes what later muxers write.
fn matroska_codec_delay(
    container: &str,
    parameters: &codec::Parameters,
    time_base: Rational,
) -> i64 {
    let old_muxer = unsafe { ffmpeg::ffi::avformat_version() } < FIXED_MATROSKA_MUXER;
    let (padding, rate) = unsafe {
        let p = parameters.as_ptr();
        ((*p).initial_padding, (*p).sample_rate)
    };
    let opus = parameters.id() == codec::Id::OPUS;
    if !(old_muxer && matches!(container, "matroska" | "webm") && opus) || padding <= 0 || rate <= 0
    {
        return 0;
    }
    unsafe {
        ffmpeg::ffi::av_rescale_q(
            i64::from(padding),
            Rational::new(1, rate).into(),
            time_base.into(),
        )
    }
}

/// The first libavformat taken to write Opus's codec delay into a Matroska track's times: 59.30
/// is the last one Ladybird's correction names; FFmpeg 5.1 (59.27, measured) is affected, and
/// the muxer of today's FFmpeg adds the delay itself.
const FIXED_MATROSKA_MUXER: u32 = (59 << 16) | (31 << 8);

/// The layout Opus takes for `channels` (Vorbis's channel order, which libopus requires of more
/// than two; it refused 5.1 with side channels, as in most AC-3); None beyond eight.
fn opus_layout(channels: i32) -> Option<ffmpeg::ChannelLayout> {
    use ffmpeg::ChannelLayout as L;
    Some(match channels {
        1 => L::MONO,
        2 => L::STEREO,
        3 => L::SURROUND,
        4 => L::QUAD,
        5 => L::_5POINT0_BACK,
        6 => L::_5POINT1_BACK,
        7 => L::_6POINT1,
        8 => L::_7POINT1,
        _ => return None,
    })
}

/// The decoder's channel layout, or the usual one for its channel count when the stream does not
/// say (PCM in AVI or WAV often does not).
fn layout_of(decoder: &decoder::Audio) -> ffmpeg::ChannelLayout {
    let layout = decoder.channel_layout();
    if layout.bits() == 0 {
        ffmpeg::ChannelLayout::default(i32::from(decoder.channels()))
    } else {
        layout
    }
}

/// A filter graph that converts decoded sound to what the encoder takes, in frames of the
/// encoder's size.
fn resampler(
    decoder: &decoder::Audio,
    encoder: &encoder::Audio,
) -> Result<filter::Graph, ffmpeg::Error> {
    let mut graph = filter::Graph::new();
    let args = format!(
        "time_base={}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
        decoder.time_base(),
        decoder.rate(),
        decoder.format().name(),
        layout_of(decoder).bits()
    );
    graph.add(
        &filter::find("abuffer").ok_or(ffmpeg::Error::FilterNotFound)?,
        "in",
        &args,
    )?;
    graph.add(
        &filter::find("abuffersink").ok_or(ffmpeg::Error::FilterNotFound)?,
        "out",
        "",
    )?;
    {
        let mut out = graph.get("out").expect("added");
        out.set_sample_format(encoder.format());
        out.set_channel_layout(encoder.channel_layout());
        // Not `set_sample_rate`: it writes an i64 into this list of C ints, which adds a rate
        // of 0, and a source nearer 0 Hz than the encoder's rate (22050 Hz against Opus's
        // 48000) was then negotiated to 0 Hz, and refused.
        let rate = encoder.rate() as std::ffi::c_int;
        let set = unsafe {
            ffmpeg::ffi::av_opt_set_bin(
                out.as_mut_ptr() as *mut _,
                c"sample_rates".as_ptr(),
                (&rate as *const std::ffi::c_int).cast(),
                std::mem::size_of::<std::ffi::c_int>() as std::ffi::c_int,
                ffmpeg::ffi::AV_OPT_SEARCH_CHILDREN,
            )
        };
        if set < 0 {
            return Err(ffmpeg::Error::from(set));
        }
    }
    graph.output("in", 0)?.input("out", 0)?.parse("anull")?;
    graph.validate()?;
    let variable = encoder.codec().is_some_and(|c| {
        c.capabilities()
            .contains(ffmpeg::codec::capabilities::Capabilities::VARIABLE_FRAME_SIZE)
    });
    if !variable && encoder.frame_size() > 0 {
        graph
            .get("out")
            .expect("added")
            .sink()
            .set_frame_size(encoder.frame_size());
    }
    Ok(graph)
}
