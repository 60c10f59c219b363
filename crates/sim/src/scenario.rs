//! What to simulate: the audience, the network, the stream and the planner
//! settings, read from TOML and overridden field by field.
//!
//! Every field has one name (its TOML path, such as `audience.capacity_mix`)
//! and one parser, used alike for the file and for the command-line flags,
//! so an error always names the field it is about.

use crate::rng::{CapacityMix, SessionLength};
use std::fmt;

/// The simulator's planner policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// The seed's behaviour through `MeshCoordinator`: `add_peer`; on a leave
    /// `remove_peer`, then `reassign_peer` for each orphan, a refused orphan
    /// retried each second.
    Seed,
    /// The current `Planner` as the server drives it: `join_relaying`,
    /// `leave`, and `place_waiting` at joins and once a second, with
    /// `PlacementPolicy::Shallowest` (the seed's placement rule; the
    /// default before capacity-first won the reference scenario).
    Shallowest,
    /// As `Shallowest`, with `PlacementPolicy::CapacityFirst`: what
    /// `meshrelay serve` uses by default.
    CapacityFirst,
    /// As `Shallowest`, with `PlacementPolicy::StableFirst`.
    StableFirst,
}

impl PolicyKind {
    /// The name used in scenarios and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::Shallowest => "shallowest",
            Self::CapacityFirst => "capacity-first",
            Self::StableFirst => "stable-first",
        }
    }
}

/// One step of the arrival rate: from `from_s` on, `per_s` newcomers a second
/// (a Poisson process), until the next step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStep {
    /// Start of the step, seconds from the start of the run.
    pub from_s: f64,
    /// Mean arrivals per second.
    pub per_s: f64,
}

/// A burst of newcomers on top of the arrival rate: `viewers` on average,
/// arriving uniformly over `over_s` seconds from `at_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlashCrowd {
    /// When the burst starts, seconds.
    pub at_s: f64,
    /// Mean number of newcomers in the burst.
    pub viewers: f64,
    /// How long the burst lasts, seconds.
    pub over_s: f64,
}

/// Arrival rate over time: explicit steps, or the rate that keeps the
/// initial audience stationary (`initial / mean session`).
#[derive(Debug, Clone, PartialEq)]
pub enum Arrivals {
    /// `initial / mean session` per second, all run long.
    Steady,
    /// Piecewise-constant steps, in increasing `from_s`.
    Steps(Vec<RateStep>),
}

/// A complete scenario. [`Scenario::default`] is what `meshrelay sim` runs
/// with no file and no flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Seed of every random draw: same seed, same run.
    pub seed: u64,
    /// Simulated time, seconds.
    pub duration_s: f64,
    /// Which planner policy drives the tree.
    pub policy: PolicyKind,
    /// Whether a peer that lost its feed reads the hole from the origin's
    /// ring (as the SDK does), so it loses nothing and the origin pays.
    pub repair: bool,
    /// Interval of the time series, seconds.
    pub sample_every_s: f64,
    /// Viewers present at the start, with the session time they have left.
    pub initial_viewers: u64,
    /// Newcomers over time.
    pub arrivals: Arrivals,
    /// Bursts of newcomers.
    pub flash_crowds: Vec<FlashCrowd>,
    /// Session lengths of newcomers.
    pub session: SessionLength,
    /// Claimed capacities (children a viewer offers to relay to).
    pub capacity_mix: CapacityMix,
    /// Share of departures that are abrupt (no `Leave`: noticed late).
    pub abrupt_fraction: f64,
    /// One-way delay between two peers, or a peer and the server, ms.
    pub hop_delay_ms: f64,
    /// Round trips a new parent link (or an origin reader) needs before
    /// objects flow: signalling, ICE, DTLS, SCTP.
    pub setup_round_trips: f64,
    /// An abrupt leaver without children is noticed this long after it went.
    pub heartbeat_timeout_s: f64,
    /// An abrupt leaver with children is noticed this long after it went
    /// when that is sooner than the heartbeat timeout: its children's
    /// channels close.
    pub channel_close_s: f64,
    /// Objects published per second.
    pub objects_per_s: f64,
    /// Bytes per object.
    pub object_bytes: u64,
    /// Planner: most children per peer.
    pub max_children: usize,
    /// Planner: most roots (peers fed by the origin).
    pub root_count: usize,
    /// Planner: deepest depth (roots are 0).
    pub max_depth: u32,
}

impl Default for Scenario {
    fn default() -> Self {
        let mesh = meshrelay_mesh::MeshConfig::default();
        Self {
            seed: 1,
            duration_s: 600.0,
            policy: PolicyKind::CapacityFirst,
            repair: true,
            sample_every_s: 10.0,
            initial_viewers: 1000,
            arrivals: Arrivals::Steady,
            flash_crowds: Vec::new(),
            session: SessionLength::LogNormal {
                mean_s: 600.0,
                sigma: 1.5,
            },
            capacity_mix: CapacityMix::new(vec![(0, 30.0), (1, 30.0), (3, 40.0)]),
            abrupt_fraction: 0.3,
            hop_delay_ms: 40.0,
            setup_round_trips: 4.0,
            heartbeat_timeout_s: 10.0,
            channel_close_s: 5.0,
            objects_per_s: 30.0,
            object_bytes: 12_500,
            max_children: mesh.max_children,
            root_count: mesh.root_peer_count,
            max_depth: mesh.max_depth,
        }
    }
}

/// A field that could not be read or is out of range. Its `Display` names
/// the field first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The field's TOML path (`audience.capacity_mix`), or `scenario` for
    /// the file as a whole.
    pub field: String,
    /// What is wrong, and what is expected.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// Every field, by TOML path, in the order the canonical form prints them.
pub const FIELDS: [&str; 20] = [
    "seed",
    "duration_s",
    "policy",
    "repair",
    "sample_every_s",
    "audience.initial",
    "audience.arrivals",
    "audience.flash_crowds",
    "audience.session",
    "audience.capacity_mix",
    "audience.abrupt_fraction",
    "network.hop_delay_ms",
    "network.setup_round_trips",
    "network.heartbeat_timeout_s",
    "network.channel_close_s",
    "stream.objects_per_s",
    "stream.object_bytes",
    "planner.max_children",
    "planner.root_count",
    "planner.max_depth",
];

fn err(field: &str, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        field: field.to_string(),
        message: message.into(),
    }
}

fn number(field: &str, s: &str) -> Result<f64, ScenarioError> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| err(field, format!("{s:?} is not a number")))?;
    if !v.is_finite() {
        return Err(err(field, format!("{s:?} is not a finite number")));
    }
    Ok(v)
}

fn at_least(field: &str, s: &str, min: f64) -> Result<f64, ScenarioError> {
    let v = number(field, s)?;
    if v < min {
        return Err(err(field, format!("{v} must be at least {min}")));
    }
    Ok(v)
}

fn positive(field: &str, s: &str) -> Result<f64, ScenarioError> {
    let v = number(field, s)?;
    if v <= 0.0 {
        return Err(err(field, format!("{v} must be above 0")));
    }
    Ok(v)
}

fn integer(field: &str, s: &str, min: u64) -> Result<u64, ScenarioError> {
    let v: u64 = s.trim().parse().map_err(|_| {
        err(
            field,
            format!("{s:?} is not a whole number of at least {min}"),
        )
    })?;
    if v < min {
        return Err(err(field, format!("{v} must be at least {min}")));
    }
    Ok(v)
}

fn boolean(field: &str, s: &str) -> Result<bool, ScenarioError> {
    match s.trim() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        other => Err(err(field, format!("{other:?} is not true or false"))),
    }
}

/// Parses `0:20,1:30,3:50`: capacity:weight pairs, weights positive (any
/// scale; they are normalised).
pub fn parse_capacity_mix(field: &str, s: &str) -> Result<CapacityMix, ScenarioError> {
    let usage = "expected CAPACITY:WEIGHT pairs separated by commas, such as 0:20,1:30,3:50";
    let mut pairs = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (c, w) = part
            .split_once(':')
            .ok_or_else(|| err(field, format!("{part:?} has no ':'; {usage}")))?;
        let c: u32 = c.trim().parse().map_err(|_| {
            err(
                field,
                format!("capacity {c:?} is not a whole number; {usage}"),
            )
        })?;
        let w: f64 = w
            .trim()
            .parse()
            .map_err(|_| err(field, format!("weight {w:?} is not a number; {usage}")))?;
        if !(w.is_finite() && w > 0.0) {
            return Err(err(field, format!("weight {w} must be above 0; {usage}")));
        }
        if pairs.iter().any(|&(seen, _)| seen == c) {
            return Err(err(field, format!("capacity {c} is given twice")));
        }
        pairs.push((c, w));
    }
    if pairs.is_empty() {
        return Err(err(field, format!("is empty; {usage}")));
    }
    Ok(CapacityMix::new(pairs))
}

/// Parses `exponential:MEAN`, `lognormal:MEAN:SIGMA` or `pareto:MEAN:ALPHA`
/// (seconds; SIGMA above 0, ALPHA above 1 so the mean exists).
pub fn parse_session(field: &str, s: &str) -> Result<SessionLength, ScenarioError> {
    let usage = "expected exponential:MEAN_S, lognormal:MEAN_S:SIGMA or pareto:MEAN_S:ALPHA";
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    let mean = |p: &str| -> Result<f64, ScenarioError> {
        let v: f64 = p
            .parse()
            .map_err(|_| err(field, format!("mean {p:?} is not a number; {usage}")))?;
        if !(v.is_finite() && v > 0.0) {
            return Err(err(field, format!("mean {v} must be above 0")));
        }
        Ok(v)
    };
    let shape = |p: &str, name: &str, min: f64| -> Result<f64, ScenarioError> {
        let v: f64 = p
            .parse()
            .map_err(|_| err(field, format!("{name} {p:?} is not a number; {usage}")))?;
        if !(v.is_finite() && v > min) {
            return Err(err(field, format!("{name} {v} must be above {min}")));
        }
        Ok(v)
    };
    match parts.as_slice() {
        ["exponential", m] => Ok(SessionLength::Exponential { mean_s: mean(m)? }),
        ["lognormal", m, sg] => Ok(SessionLength::LogNormal {
            mean_s: mean(m)?,
            sigma: shape(sg, "sigma", 0.0)?,
        }),
        ["pareto", m, a] => Ok(SessionLength::Pareto {
            mean_s: mean(m)?,
            alpha: shape(a, "alpha", 1.0)?,
        }),
        _ => Err(err(field, format!("{s:?}: {usage}"))),
    }
}

/// Parses `steady` or `FROM_S:PER_S,...` (steps in increasing time, rates
/// at least 0; before the first step the rate is 0).
pub fn parse_arrivals(field: &str, s: &str) -> Result<Arrivals, ScenarioError> {
    if s.trim() == "steady" {
        return Ok(Arrivals::Steady);
    }
    let usage =
        "expected steady, or FROM_S:PER_S steps separated by commas, such as 0:100,1800:150";
    let mut steps: Vec<RateStep> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (t, r) = part
            .split_once(':')
            .ok_or_else(|| err(field, format!("{part:?} has no ':'; {usage}")))?;
        let from_s: f64 = t
            .trim()
            .parse()
            .map_err(|_| err(field, format!("time {t:?} is not a number; {usage}")))?;
        let per_s: f64 = r
            .trim()
            .parse()
            .map_err(|_| err(field, format!("rate {r:?} is not a number; {usage}")))?;
        if !(from_s.is_finite() && from_s >= 0.0) {
            return Err(err(field, format!("time {from_s} must be at least 0")));
        }
        if !(per_s.is_finite() && per_s >= 0.0) {
            return Err(err(field, format!("rate {per_s} must be at least 0")));
        }
        if steps.last().is_some_and(|p| p.from_s >= from_s) {
            return Err(err(field, format!("step times must increase ({from_s})")));
        }
        steps.push(RateStep { from_s, per_s });
    }
    if steps.is_empty() {
        return Err(err(field, format!("is empty; {usage}")));
    }
    Ok(Arrivals::Steps(steps))
}

/// Parses `AT_S:VIEWERS:OVER_S,...` (empty for none).
pub fn parse_flash_crowds(field: &str, s: &str) -> Result<Vec<FlashCrowd>, ScenarioError> {
    let usage = "expected AT_S:VIEWERS:OVER_S bursts separated by commas, such as 1800:20000:60";
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let nums: Vec<&str> = part.split(':').collect();
        let [at, n, over] = nums.as_slice() else {
            return Err(err(field, format!("{part:?}: {usage}")));
        };
        let parse = |p: &str, what: &str| -> Result<f64, ScenarioError> {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| err(field, format!("{what} {p:?} is not a number; {usage}")))?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(err(field, format!("{what} {v} must be at least 0")));
            }
            Ok(v)
        };
        let crowd = FlashCrowd {
            at_s: parse(at, "start")?,
            viewers: parse(n, "viewers")?,
            over_s: parse(over, "length")?,
        };
        if crowd.over_s <= 0.0 {
            return Err(err(field, "length must be above 0"));
        }
        out.push(crowd);
    }
    Ok(out)
}

impl Scenario {
    /// Sets one field, by TOML path, from its text form (the form flags
    /// take). Nothing changes when it fails.
    pub fn set(&mut self, field: &str, value: &str) -> Result<(), ScenarioError> {
        let f = field;
        let v = value;
        match field {
            "seed" => self.seed = integer(f, v, 0)?,
            "duration_s" => self.duration_s = positive(f, v)?,
            "policy" => {
                self.policy = match v.trim() {
                    "seed" => PolicyKind::Seed,
                    "shallowest" => PolicyKind::Shallowest,
                    "capacity-first" => PolicyKind::CapacityFirst,
                    "stable-first" => PolicyKind::StableFirst,
                    other => {
                        return Err(err(
                            f,
                            format!(
                            "{other:?}: expected capacity-first, shallowest, stable-first or seed"
                        ),
                        ))
                    }
                }
            }
            "repair" => self.repair = boolean(f, v)?,
            "sample_every_s" => self.sample_every_s = positive(f, v)?,
            "audience.initial" => self.initial_viewers = integer(f, v, 0)?,
            "audience.arrivals" => self.arrivals = parse_arrivals(f, v)?,
            "audience.flash_crowds" => self.flash_crowds = parse_flash_crowds(f, v)?,
            "audience.session" => self.session = parse_session(f, v)?,
            "audience.capacity_mix" => self.capacity_mix = parse_capacity_mix(f, v)?,
            "audience.abrupt_fraction" => {
                let x = at_least(f, v, 0.0)?;
                if x > 1.0 {
                    return Err(err(f, format!("{x} must be at most 1")));
                }
                self.abrupt_fraction = x;
            }
            "network.hop_delay_ms" => self.hop_delay_ms = at_least(f, v, 0.0)?,
            "network.setup_round_trips" => self.setup_round_trips = at_least(f, v, 0.0)?,
            "network.heartbeat_timeout_s" => self.heartbeat_timeout_s = at_least(f, v, 0.0)?,
            "network.channel_close_s" => self.channel_close_s = at_least(f, v, 0.0)?,
            "stream.objects_per_s" => self.objects_per_s = positive(f, v)?,
            "stream.object_bytes" => self.object_bytes = integer(f, v, 1)?,
            "planner.max_children" => self.max_children = integer(f, v, 1)? as usize,
            "planner.root_count" => self.root_count = integer(f, v, 1)? as usize,
            "planner.max_depth" => {
                self.max_depth = u32::try_from(integer(f, v, 1)?)
                    .map_err(|_| err(f, format!("{v} is too large")))?
            }
            _ => {
                return Err(err(
                    f,
                    format!("unknown field; known: {}", FIELDS.join(", ")),
                ))
            }
        }
        Ok(())
    }

    /// Reads a scenario file: every field optional (the default stands),
    /// unknown fields refused. Values may be TOML numbers, booleans or
    /// strings in the flag syntax.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let mut scenario = Self::default();
        scenario.apply_toml(text)?;
        Ok(scenario)
    }

    /// Applies the fields a TOML text sets over this scenario.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ScenarioError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err("scenario", e.to_string().trim_end().to_string()))?;
        let mut fields = Vec::new();
        for (key, value) in &table {
            match value {
                toml::Value::Table(section) => {
                    for (k, v) in section {
                        fields.push((format!("{key}.{k}"), v));
                    }
                }
                v => fields.push((key.clone(), v)),
            }
        }
        for (field, value) in fields {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(err(
                        &field,
                        "expected a number, a boolean or a string".to_string(),
                    ))
                }
            };
            self.set(&field, &text)?;
        }
        Ok(())
    }

    /// Arrivals per second at the start when [`Arrivals::Steady`].
    pub fn steady_rate(&self) -> f64 {
        self.initial_viewers as f64 / self.session.mean_s()
    }

    /// Abrupt leavers noticed after this long, seconds: with children, the
    /// sooner of the channel close and the heartbeat timeout.
    pub fn detection_delay_s(&self, has_children: bool) -> f64 {
        if has_children {
            self.channel_close_s.min(self.heartbeat_timeout_s)
        } else {
            self.heartbeat_timeout_s
        }
    }

    /// Time for a new link (or origin reader) to carry objects, seconds:
    /// round trips of twice the hop delay.
    pub fn setup_delay_s(&self) -> f64 {
        self.setup_round_trips * 2.0 * self.hop_delay_ms / 1000.0
    }

    /// Stream rate, bytes per second.
    pub fn stream_bytes_per_s(&self) -> f64 {
        self.objects_per_s * self.object_bytes as f64
    }

    /// The scenario as a TOML file that reproduces it, every field present.
    pub fn to_toml(&self) -> String {
        let session = match self.session {
            SessionLength::Exponential { mean_s } => format!("exponential:{mean_s}"),
            SessionLength::LogNormal { mean_s, sigma } => format!("lognormal:{mean_s}:{sigma}"),
            SessionLength::Pareto { mean_s, alpha } => format!("pareto:{mean_s}:{alpha}"),
        };
        let arrivals = match &self.arrivals {
            Arrivals::Steady => "steady".to_string(),
            Arrivals::Steps(steps) => steps
                .iter()
                .map(|s| format!("{}:{}", s.from_s, s.per_s))
                .collect::<Vec<_>>()
                .join(","),
        };
        let flash = self
            .flash_crowds
            .iter()
            .map(|c| format!("{}:{}:{}", c.at_s, c.viewers, c.over_s))
            .collect::<Vec<_>>()
            .join(",");
        let mix = self
            .capacity_mix
            .entries()
            .iter()
            .map(|&(c, w)| format!("{c}:{w}"))
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "seed = {}\nduration_s = {}\npolicy = \"{}\"\nrepair = {}\nsample_every_s = {}\n\n\
             [audience]\ninitial = {}\narrivals = \"{arrivals}\"\nflash_crowds = \"{flash}\"\n\
             session = \"{session}\"\ncapacity_mix = \"{mix}\"\nabrupt_fraction = {}\n\n\
             [network]\nhop_delay_ms = {}\nsetup_round_trips = {}\nheartbeat_timeout_s = {}\n\
             channel_close_s = {}\n\n[stream]\nobjects_per_s = {}\nobject_bytes = {}\n\n\
             [planner]\nmax_children = {}\nroot_count = {}\nmax_depth = {}\n",
            self.seed,
            self.duration_s,
            self.policy.name(),
            self.repair,
            self.sample_every_s,
            self.initial_viewers,
            self.abrupt_fraction,
            self.hop_delay_ms,
            self.setup_round_trips,
            self.heartbeat_timeout_s,
            self.channel_close_s,
            self.objects_per_s,
            self.object_bytes,
            self.max_children,
            self.root_count,
            self.max_depth,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_form_reads_back_the_same() {
        let mut s = Scenario::default();
        s.set("audience.arrivals", "0:10,60:25.5").unwrap();
        s.set("audience.flash_crowds", "30:500:10").unwrap();
        s.set("audience.session", "pareto:300:1.8").unwrap();
        s.set("policy", "seed").unwrap();
        assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s);
    }

    #[test]
    fn errors_name_the_field() {
        let mut s = Scenario::default();
        for (field, value) in [
            ("audience.capacity_mix", "0:20,1"),
            ("audience.capacity_mix", "0:20,x:3"),
            ("audience.capacity_mix", "0:-1"),
            ("audience.arrivals", "0:-5"),
            ("audience.session", "weibull:3"),
            ("audience.abrupt_fraction", "1.5"),
            ("stream.objects_per_s", "0"),
            ("planner.root_count", "0"),
        ] {
            let e = s.set(field, value).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
        assert_eq!(s, Scenario::default());
        let e = Scenario::from_toml("[audience]\ncapacity = \"0:1\"\n").unwrap_err();
        assert_eq!(e.field, "audience.capacity");
        let e = Scenario::from_toml("[audience]\narrivals = \"0:-3\"\n").unwrap_err();
        assert!(e.to_string().contains("rate -3 must be at least 0"), "{e}");
        let e = Scenario::from_toml("seed = [1]").unwrap_err();
        assert_eq!(e.field, "seed");
        let e = Scenario::from_toml("seed = ").unwrap_err();
        assert_eq!(e.field, "scenario");
    }
}
