//! The `blender` backend's settings (`[render.backends.<name>]` of kind
//! "blender"), checked by name: the program, samples, seed, device,
//! threads, resolution scale and how many renders a process serves.

use crate::render::BackendSettings;

/// How Blender renders (from `[render.backends.<name>]`, kind "blender").
#[derive(Debug, Clone, PartialEq)]
pub struct BlenderSettings {
    /// The program and arguments before the script's (default `["blender"]`).
    pub command: Vec<String>,
    pub samples: u32,
    pub seed: u32,
    /// `CPU`, `CUDA`, `OPTIX`, `HIP`, `ONEAPI` or `METAL`.
    pub device: String,
    /// Render threads per process; 0: one per CPU.
    pub threads: u32,
    /// Render at this percentage of the canvas, then resample to it
    /// (drafts and previews; 100 for production).
    pub scale: u32,
    pub max_renders_per_process: u32,
}

const DEVICES: [&str; 6] = ["CPU", "CUDA", "OPTIX", "HIP", "ONEAPI", "METAL"];

impl BlenderSettings {
    /// # Errors
    /// A message naming the field of `[render.backends.<name>]` at fault.
    pub fn from_backend(name: &str, b: &BackendSettings) -> Result<BlenderSettings, String> {
        let field = |f: &str| format!("render.backends.{name}.{f}");
        let device = b
            .device
            .clone()
            .unwrap_or_else(|| "CPU".into())
            .to_uppercase();
        if !DEVICES.contains(&device.as_str()) {
            return Err(format!(
                "{}: \"{device}\" is not one of {}",
                field("device"),
                DEVICES.join(", ")
            ));
        }
        let samples = b.samples.unwrap_or(64);
        if !(1..=65_536).contains(&samples) {
            return Err(format!(
                "{}: {samples} is outside 1..=65536",
                field("samples")
            ));
        }
        let scale = b.scale.unwrap_or(100);
        if !(1..=100).contains(&scale) {
            return Err(format!(
                "{}: {scale} is outside 1..=100 (percent of the canvas)",
                field("scale")
            ));
        }
        let max_renders = b.max_renders_per_process.unwrap_or(100);
        if max_renders == 0 {
            return Err(format!(
                "{}: must be at least 1",
                field("max_renders_per_process")
            ));
        }
        let command = if b.command.is_empty() {
            vec!["blender".to_string()]
        } else if b.command[0].is_empty() {
            return Err(format!("{}: the program is empty", field("command")));
        } else {
            b.command.clone()
        };
        let seed = b.seed.unwrap_or(0);
        if i32::try_from(seed).is_err() {
            return Err(format!(
                "{}: {seed} is over {} (Cycles' seed is a signed 32-bit integer)",
                field("seed"),
                i32::MAX
            ));
        }
        Ok(BlenderSettings {
            command,
            samples,
            seed,
            device,
            threads: b.threads.unwrap_or(0),
            scale,
            max_renders_per_process: max_renders,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_by_name() {
        let mut b: BackendSettings = toml::from_str("kind = \"blender\"").unwrap();
        let s = BlenderSettings::from_backend("b", &b).unwrap();
        assert_eq!((s.samples, s.scale, s.device.as_str()), (64, 100, "CPU"));
        assert_eq!(s.command, ["blender"]);
        b.device = Some("tpu".into());
        let e = BlenderSettings::from_backend("b", &b).unwrap_err();
        assert!(e.starts_with("render.backends.b.device: \"TPU\""), "{e}");
        b.device = Some("optix".into());
        b.scale = Some(0);
        let e = BlenderSettings::from_backend("b", &b).unwrap_err();
        assert!(e.starts_with("render.backends.b.scale"), "{e}");
    }
}
