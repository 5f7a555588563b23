//! `stylize-video`: the command line over the library.

mod args;
mod bar;

use std::process::ExitCode;

use clap::Parser;
use stylize_video::progress::Progress;
use stylize_video::still::stylize_image;

fn main() -> ExitCode {
    let args = args::Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &args::Args) -> stylize_video::Result<()> {
    let settings = args.still()?;
    settings.validate()?;
    let mut bar = bar::Bar::new(args.quiet);
    bar.log(&format!(
        "{} -> {} with {} painting(s) on {}",
        settings.content.display(),
        settings.output.display(),
        settings.styles.len(),
        stylize_video::device::describe(settings.device)
    ));
    let summary = stylize_image(&settings, &mut bar)?;
    let o = &summary.outcome;
    bar.log(&format!(
        "{}x{}: {} iterations in {:.1} s ({:.2} it/s), loss {:.4e} -> {:.4e} ({:?})",
        summary.size.0,
        summary.size.1,
        o.iterations,
        summary.seconds,
        o.iterations as f64 / summary.seconds.max(1e-9),
        o.initial.total,
        o.best.total,
        o.stop
    ));
    bar.log(&format!("wrote {}", settings.output.display()));
    if let (Some(frames), Some(gif)) = (summary.gif_frames, &settings.gif) {
        bar.log(&format!("wrote {} ({frames} frames)", gif.path.display()));
    }
    if let Some(report) = &settings.report {
        bar.log(&format!("wrote {}", report.display()));
    }
    Ok(())
}
