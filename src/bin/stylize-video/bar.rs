//! The progress bar (indicatif) behind the library's `Progress` trait.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stylize_video::progress::Progress;

/// Shows progress on standard error; hidden when `quiet` or not a terminal.
pub struct Bar {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        Bar { bar: None, quiet }
    }
}

impl Progress for Bar {
    fn begin(&mut self, what: &str, total: u64) {
        if self.quiet {
            return;
        }
        // An unknown total (a container that does not say its frame count) shows a spinner.
        let (length, template) = if total > 0 {
            (
                Some(total),
                format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what}  loss {{msg}}  {{per_sec}}  eta {{eta}}"),
            )
        } else {
            (
                None,
                format!(
                    "{{elapsed_precise}} {{spinner}} {{pos}} {what}  loss {{msg}}  {{per_sec}}"
                ),
            )
        };
        let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(&template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        self.bar = Some(bar);
    }

    fn advance(&mut self, position: u64, loss: Option<f64>) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            if let Some(loss) = loss {
                bar.set_message(format!("{loss:.4e}"));
            }
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }

    fn log(&mut self, message: &str) {
        if self.quiet {
            return;
        }
        // A bar drawn on a terminal prints above itself; a hidden one (standard error sent to a
        // file or a pipe, as on a render farm) would drop the line.
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(format!("stylize-video: {message}")),
            _ => eprintln!("stylize-video: {message}"),
        }
    }
}
