//! Where a watch's output goes: bars on a terminal (indicatif), plain lines
//! to a pipe or file, or one JSON object per event with `--json`. The
//! decisions are the tracker's; this only writes them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use ferry_control::api;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::tracker::{BarView, Show, Style, Tracker};
use crate::cli::output;

pub enum View {
    Json,
    Plain(Tracker),
    Bars(Box<Bars>),
}

impl View {
    /// Bars only for a person at a terminal: a pipe or a file gets lines
    /// without escape codes.
    pub fn choose(json: bool, stdout_is_terminal: bool) -> anyhow::Result<View> {
        Ok(if json {
            View::Json
        } else if stdout_is_terminal {
            View::Bars(Box::new(Bars::new()?))
        } else {
            View::Plain(Tracker::new(Style::Plain))
        })
    }

    pub fn event(&mut self, job: api::Job, progress_only: bool, now: Instant) -> io::Result<()> {
        match self {
            View::Json => writeln!(io::stdout().lock(), "{}", json_event(job, progress_only)),
            View::Plain(tracker) => print_lines(tracker.apply(&job, progress_only, now)),
            View::Bars(bars) => {
                let shows = bars.tracker.apply(&job, progress_only, now);
                bars.show(shows)
            }
        }
    }

    pub fn tick(&mut self, now: Instant) -> io::Result<()> {
        match self {
            View::Json => Ok(()),
            View::Plain(tracker) => print_lines(tracker.tick(now)),
            View::Bars(bars) => {
                let shows = bars.tracker.tick(now);
                bars.show(shows)
            }
        }
    }

    /// Takes the bars off the screen, leaving the lines.
    pub fn finish(&mut self) {
        if let View::Bars(bars) = self {
            for (_, drawn) in std::mem::take(&mut bars.bars) {
                bars.clear(drawn);
            }
        }
    }
}

/// An event as `WatchJobs` sent it, the job with the fields of `jobs get --json`.
fn json_event(job: api::Job, progress_only: bool) -> serde_json::Value {
    json!({
        "job": output::object(crate::cli::commands::job_fields(job)),
        "progress_only": progress_only,
    })
}

fn print_lines(shows: Vec<Show>) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    for show in shows {
        if let Show::Line(line) = show {
            writeln!(stdout, "{line}")?;
        }
    }
    Ok(())
}

pub struct Bars {
    tracker: Tracker,
    multi: MultiProgress,
    bars: HashMap<String, Drawn>,
    bar_style: ProgressStyle,
    spinner_style: ProgressStyle,
}

/// A bar on screen, and which of the two styles it has.
struct Drawn {
    bar: ProgressBar,
    sized: Option<bool>,
}

impl Bars {
    fn new() -> anyhow::Result<Bars> {
        Ok(Bars {
            tracker: Tracker::new(Style::Bars),
            // On stdout with the lines, not indicatif's default of stderr.
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: HashMap::new(),
            bar_style: ProgressStyle::with_template("{wide_msg}\n  [{wide_bar}] {prefix}")?
                .progress_chars("=> "),
            spinner_style: ProgressStyle::with_template("{wide_msg}\n  {spinner} {prefix}")?,
        })
    }

    fn clear(&self, drawn: Drawn) {
        drawn.bar.finish_and_clear();
        self.multi.remove(&drawn.bar);
    }

    fn show(&mut self, shows: Vec<Show>) -> io::Result<()> {
        for show in shows {
            match show {
                Show::Line(line) => self.multi.println(line)?,
                Show::Bar(view) => self.draw(view),
                Show::ClearBar(job_id) => {
                    if let Some(drawn) = self.bars.remove(&job_id) {
                        self.clear(drawn);
                    }
                }
            }
        }
        Ok(())
    }

    fn draw(&mut self, view: BarView) {
        let drawn = match self.bars.entry(view.job_id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Drawn {
                bar: self.multi.add(ProgressBar::no_length()),
                sized: None,
            }),
        };
        let bar = &drawn.bar;
        let sized = view.total_bytes.is_some();
        if drawn.sized != Some(sized) {
            drawn.sized = Some(sized);
            if sized {
                bar.disable_steady_tick();
                bar.set_style(self.bar_style.clone());
            } else {
                bar.set_style(self.spinner_style.clone());
                // A spinner moves on its own between the daemon's updates.
                bar.enable_steady_tick(Duration::from_millis(120));
            }
        }
        match view.total_bytes {
            Some(total) => bar.set_length(total),
            None => bar.unset_length(),
        }
        bar.set_position(view.num_bytes);
        // The label is the message: `wide_msg` cuts it to the terminal's width.
        bar.set_message(view.label);
        bar.set_prefix(view.status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_events_carry_the_whole_job_and_the_progress_flag() {
        let job = api::Job {
            job_id: "job_1".into(),
            state: api::JobState::Transferring as i32,
            bytes_transferred: 5,
            total_bytes: 10,
            ..Default::default()
        };
        let event = json_event(job, true);
        assert_eq!(event["progress_only"], true);
        assert_eq!(event["job"]["job_id"], "job_1");
        assert_eq!(event["job"]["state"], "transferring");
        assert_eq!(event["job"]["bytes_transferred"], 5);
        assert_eq!(event["job"]["total_bytes"], 10);
        assert!(event.to_string().lines().count() == 1, "one line per event");
    }
}
