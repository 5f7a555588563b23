//! `stylize-video`: the command line over the library.

mod args;
mod bar;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use clap::{CommandFactory, FromArgMatches};
use stylize_video::progress::Progress;
use stylize_video::still::stylize_image;
use stylize_video::video::stylize_video;
use stylize_video::Error;

/// Set by the first Ctrl-C (or SIGTERM, SIGHUP): the run stops, abandoning the frame in flight,
/// keeping finished ones.
static STOP: AtomicBool = AtomicBool::new(false);

/// The signal that stopped the run (SIGINT until one does), for the exit status: 128 + it, as
/// shells report a process ended by it (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
static STOPPED_BY: AtomicI32 = AtomicI32::new(signal_hook::consts::SIGINT);

/// How a signal is named to the user.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        signal_hook::consts::SIGTERM => "SIGTERM",
        signal_hook::consts::SIGHUP => "SIGHUP",
        _ => "Ctrl-C",
    }
}

/// Stops the run on Ctrl-C, SIGTERM (a scheduler's stop) or SIGHUP (a closed terminal), from a
/// thread of its own (not in a signal handler: it prints and removes files); a second signal
/// quits at once.
fn handle_stop_signals(is_still: bool) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                // This thread alone sets them: the cause first, then the stop it explains.
                if STOP.load(Ordering::SeqCst) {
                    // A second one: leave at once, without the files half written.
                    stylize_video::io::atomic::remove_in_progress();
                    if is_still {
                        eprintln!("\nstylize-video: stopped at once; nothing written");
                    } else {
                        eprintln!(
                            "\nstylize-video: stopped at once; the finished frames are kept for the next run"
                        );
                    }
                    // Not std::process::exit: its exit handlers would tear down libtorch's and
                    // ffmpeg's state under the threads still using it (a segmentation fault).
                    // SAFETY: _exit ends the process at once and touches no Rust state.
                    unsafe { libc::_exit(128 + signal) };
                }
                STOPPED_BY.store(signal, Ordering::SeqCst);
                STOP.store(true, Ordering::SeqCst);
                let on = if signal == signal_hook::consts::SIGINT {
                    String::new()
                } else {
                    format!(" on {}", signal_name(signal))
                };
                eprintln!("\nstylize-video: stopping{on} (Ctrl-C again to quit now)");
            }
        });
}

fn main() -> ExitCode {
    let matches = args::Args::command().get_matches();
    let args = args::Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    quiet_encoder_logs(args.quiet);
    quiet_libtorch_panics();
    let is_still = args.is_still();
    handle_stop_signals(is_still);
    let result = if let Err(e) = args.check_applicable(&matches) {
        Err(e)
    } else if is_still {
        still(&args)
    } else {
        video(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ Error::Interrupted(_)) => {
            eprintln!("{e}");
            ExitCode::from((128 + STOPPED_BY.load(Ordering::SeqCst)) as u8)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SVT-AV1 (`--codec av1`) writes its own log to standard error, past ffmpeg's (which the library
/// keeps quiet), a dozen lines of its settings over the progress bar: keep it to warnings, or to
/// errors with `--quiet`, unless the user chose a level (`SVT_LOG`). It reads the level when an
/// encoder opens; this runs before any other thread is started.
fn quiet_encoder_logs(quiet: bool) {
    if std::env::var_os("SVT_LOG").is_none() {
        std::env::set_var("SVT_LOG", if quiet { "1" } else { "2" });
    }
}

/// libtorch's errors arrive as panics carrying its whole C++ call stack (kilobytes); the library
/// turns those into errors (running out of memory says which size would fit), so only their
/// first line is shown as they happen. Other panics are shown as they are.
fn quiet_libtorch_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        use stylize_video::engine::stylizer::{first_line, panic_message};
        let message = panic_message(info.payload()).unwrap_or("");
        if message.contains("Torch(") && message.contains("c10::") {
            eprintln!("stylize-video: libtorch: {}", first_line(message));
        } else {
            default(info);
        }
    }));
}

fn still(args: &args::Args) -> stylize_video::Result<()> {
    let settings = args.still()?;
    settings.validate()?;
    let mut bar = bar::Bar::new(args.quiet);
    bar.log(&format!(
        "{} -> {} with {} painting(s) on {}",
        settings.content.display(),
        settings.output.display(),
        settings.style.styles.len(),
        stylize_video::device::describe(settings.style.device)
    ));
    let summary = stylize_image(&settings, &mut bar, &STOP)?;
    let o = &summary.outcome;
    // The colours are replaced after the optimisation, which the losses are of.
    let colours = if settings.style.preserve_colors {
        ", the optimised picture's: its colours are then the content's"
    } else {
        ""
    };
    bar.log(&format!(
        "{}x{}: {} iterations in {:.1} s ({:.2} it/s), loss {:.4e} -> {:.4e} ({}{colours})",
        summary.size.0,
        summary.size.1,
        o.iterations,
        summary.seconds,
        o.iterations as f64 / summary.seconds.max(1e-9),
        o.initial.total,
        o.best.total,
        o.stop.describe()
    ));
    bar.log(&summary.memory.describe());
    bar.log(&format!("wrote {}", settings.output.display()));
    if let (Some(frames), Some(gif)) = (summary.gif_frames, &settings.gif) {
        bar.log(&format!("wrote {} ({frames} frames)", gif.path.display()));
    }
    if let Some(report) = &settings.report {
        bar.log(&format!("wrote {}", report.display()));
    }
    Ok(())
}

fn video(args: &args::Args) -> stylize_video::Result<()> {
    let settings = args.video()?;
    settings.validate()?;
    let mut bar = bar::Bar::new(args.quiet);
    bar.log(&format!(
        "{} -> {} with {} painting(s) on {}",
        settings.input.display(),
        settings.output.display(),
        settings.style.styles.len(),
        stylize_video::device::describe(settings.style.device)
    ));
    let summary = stylize_video(&settings, &mut bar, &STOP)?;
    let o = &summary.outcome;
    bar.log(&format!("source: {}", summary.source));
    let stylized = o.frames - o.resumed;
    bar.log(&format!(
        "{} frame(s) at {}x{} ({} resumed, {stylized} stylised) in {:.1} s: {:.2} frames/s, {:.0}% of the time optimising; iterations: first frame {}, warm frames {}",
        o.frames,
        summary.processing.0,
        summary.processing.1,
        o.resumed,
        o.seconds,
        stylized as f64 / o.seconds.max(1e-9),
        100.0 * o.stylize_seconds / o.seconds.max(1e-9),
        o.first_frame_iterations.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        if o.warm_iterations.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1} on average", o.warm_iterations.iter().sum::<usize>() as f64 / o.warm_iterations.len() as f64)
        }
    ));
    if !o.shot_cuts.is_empty() {
        bar.log(&format!(
            "{} new shot(s) started cold, at frame(s) {}",
            o.shot_cuts.len(),
            o.shot_cuts
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    bar.log(&summary.memory.describe());
    bar.log(&format!("wrote {}", settings.output.display()));
    if let Some(report) = &settings.report {
        bar.log(&format!("wrote {}", report.display()));
    }
    Ok(())
}
