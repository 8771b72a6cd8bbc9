//! `hark devices`: the capture devices, the default one marked with `*`.

use anyhow::Result;

/// `hark devices`: one line per capture device with its default rate and format.
pub fn run() -> Result<()> {
    let devs = crate::daemon::sources::microphone::devices()?;
    if devs.is_empty() {
        println!("no capture devices (use `hark listen --input FILE.wav` to run on a file)");
    }
    for d in devs {
        println!(
            "{} {}  [{}]",
            if d.is_default { "*" } else { " " },
            d.name,
            d.default_config.as_deref().unwrap_or("no default config")
        );
    }
    Ok(())
}
