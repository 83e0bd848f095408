//! Numbers as pprof prints them: one output unit per table chosen from the
//! smallest and largest values, `%.2f` with a trailing ".00" dropped, and
//! percentages with at least two significant digits. The units, their
//! aliases and the scaling rules are those of pprof's
//! `internal/measurement`, quirks included: a profile in `microseconds` or
//! `us` prints `1.90ms`, one in an unknown unit prints it after each value.

/// A unit: the name pprof prints, the aliases it recognizes in a profile
/// and its size in the family's smallest unit.
struct Unit {
    name: &'static str,
    aliases: &'static [&'static str],
    factor: f64,
}

/// A family of units, smallest first, with the unit used when a value is
/// too small for any (pprof's `unitType`).
struct UnitFamily {
    units: &'static [Unit],
    default: &'static str,
    default_factor: f64,
}

const fn unit(name: &'static str, aliases: &'static [&'static str], factor: f64) -> Unit {
    Unit {
        name,
        aliases,
        factor,
    }
}

/// pprof's three families (`internal/measurement`), with its names and
/// aliases. "μs" is an alias that never matches: pprof drops a trailing "s"
/// from any unit longer than two bytes before looking it up, and "μs" is
/// three.
const FAMILIES: [UnitFamily; 3] = [
    UnitFamily {
        units: &[
            unit("B", &["b", "byte"], 1.0),
            unit("kB", &["kb", "kbyte", "kilobyte"], 1024.0),
            unit("MB", &["mb", "mbyte", "megabyte"], 1048576.0),
            unit("GB", &["gb", "gbyte", "gigabyte"], 1073741824.0),
            unit("TB", &["tb", "tbyte", "terabyte"], 1099511627776.0),
            unit("PB", &["pb", "pbyte", "petabyte"], 1125899906842624.0),
        ],
        default: "B",
        default_factor: 1.0,
    },
    UnitFamily {
        units: &[
            unit("ns", &["ns", "nanosecond"], 1.0),
            unit("us", &["μs", "us", "microsecond"], 1e3),
            unit("ms", &["ms", "millisecond"], 1e6),
            unit("s", &["s", "sec", "second"], 1e9),
            unit("hrs", &["hour", "hr"], 3.6e12),
        ],
        default: "s",
        default_factor: 1e9,
    },
    UnitFamily {
        units: &[
            unit("n*GCU", &["nanogcu"], 1e-9),
            unit("u*GCU", &["microgcu"], 1e-6),
            unit("m*GCU", &["milligcu"], 1e-3),
            unit("GCU", &["gcu"], 1.0),
            unit("k*GCU", &["kilogcu"], 1e3),
            unit("M*GCU", &["megagcu"], 1e6),
            unit("G*GCU", &["gigagcu"], 1e9),
            unit("T*GCU", &["teragcu"], 1e12),
            unit("P*GCU", &["petagcu"], 1e15),
        ],
        default: "GCU",
        default_factor: 1.0,
    },
];

impl UnitFamily {
    /// pprof's `sniffUnit`: the unit `name` stands for in this family,
    /// matched lower-case and without a trailing "s" when longer than two
    /// bytes.
    fn sniff(&self, name: &str) -> Option<&Unit> {
        let lower = name.to_lowercase();
        let alias = if lower.len() > 2 {
            lower.strip_suffix('s').unwrap_or(&lower)
        } else {
            &lower
        };
        self.units.iter().find(|u| u.aliases.contains(&alias))
    }

    /// pprof's `autoScale`: `value` (in the smallest unit) in the largest
    /// unit in which it is at least 1, or in the default unit.
    fn auto_scale(&self, value: f64) -> (f64, &'static str) {
        match self.units.iter().rev().find(|u| value / u.factor >= 1.0) {
            Some(u) => (value / u.factor, u.name),
            None => (value / self.default_factor, self.default),
        }
    }
}

/// Where pprof scales to: the best unit for each value, or a fixed one.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Auto,
    Unit(String),
}

/// pprof's `measurement.Scale`: `value` in `from` converted to `to`, and
/// the unit to print after it ("" for none).
fn scale(value: i64, from: &str, to: &Target) -> (f64, String) {
    if value < 0 && value != i64::MIN {
        let (v, unit) = scale(-value, from, to);
        return (-v, unit);
    }
    for family in &FAMILIES {
        let Some(from) = family.sniff(from) else {
            continue;
        };
        let base = value as f64 * from.factor;
        let (scaled, unit) = match to {
            Target::Auto => family.auto_scale(base),
            Target::Unit(to) => match family.sniff(to) {
                Some(to) => (base / to.factor, to.name),
                None => (base / family.default_factor, family.default),
            },
        };
        return (scaled, unit.to_owned());
    }
    match to {
        Target::Auto => (value as f64, String::new()),
        Target::Unit(to) if ["count", "sample", "unit"].contains(&to.as_str()) => {
            (value as f64, String::new())
        }
        Target::Unit(to) => (value as f64, to.clone()),
    }
}

/// pprof's `measurement.Scale(value, from, to)` with `to` a unit name
/// ("minimum" and "auto" choose the best unit): the value and the unit
/// it is then in ("" for none). The numeric label filters compare in it.
pub(crate) fn scale_to(value: i64, from: &str, to: &str) -> (f64, String) {
    let target = match to {
        "minimum" | "auto" => Target::Auto,
        unit => Target::Unit(unit.to_owned()),
    };
    scale(value, from, &target)
}

/// pprof's `compatibleValueTypes` for units: the same, or both of one
/// family (bytes, time, GCU).
pub fn compatible(a: &str, b: &str) -> bool {
    a == b
        || FAMILIES
            .iter()
            .any(|f| f.sniff(a).is_some() && f.sniff(b).is_some())
}

/// Whether pprof scales values of `unit` (bytes, time, GCU): the others
/// are counts.
pub fn scales(unit: &str) -> bool {
    FAMILIES.iter().any(|f| f.sniff(unit).is_some())
}

/// What one `from` is in `to` (1000 from "ms" to "us"); 1 for units pprof
/// does not know.
pub fn ratio(from: &str, to: &str) -> f64 {
    scale(1, from, &Target::Unit(to.to_owned())).0
}

/// How values of one table are printed.
#[derive(Clone, Debug, PartialEq)]
pub struct Formatter {
    /// The unit of the sample values.
    from: String,
    /// The unit they are printed in.
    to: Target,
}

impl Formatter {
    /// pprof's choice of one unit for a table whose smallest non-zero node
    /// value is `min` and whose total is `max`, for values in `sample_unit`
    /// (pprof's `selectOutputUnit`). `min` 0 means a table without rows:
    /// then each value gets its own best unit, as in pprof.
    pub fn for_range(sample_unit: &str, min: i64, max: i64) -> Self {
        let auto = |value: i64| scale(value, sample_unit, &Target::Auto).1;
        let to = if min == 0 {
            Target::Auto
        } else {
            let (min_unit, max_unit) = (auto(min), auto(max));
            let unit = if min_unit != max_unit && min.saturating_mul(100) < max {
                auto(min.saturating_mul(100))
            } else {
                min_unit
            };
            Target::Unit(if unit.is_empty() {
                sample_unit.to_owned()
            } else {
                unit
            })
        };
        Formatter {
            from: sample_unit.to_owned(),
            to,
        }
    }

    /// Each value in its own best unit (pprof's `measurement.Label`).
    pub fn auto(sample_unit: &str) -> Self {
        Formatter {
            from: sample_unit.to_owned(),
            to: Target::Auto,
        }
    }

    /// `value` in `unit` as a whole number of nanoseconds, if `unit` is one
    /// of time.
    pub fn nanoseconds(value: i64, unit: &str) -> Option<i64> {
        let (nanos, unit) = scale(value, unit, &Target::Unit("nanoseconds".to_owned()));
        (unit == "ns").then_some(nanos as i64)
    }

    /// `value` in this formatter's unit, e.g. "1.50MB", "0", "-512kB"
    /// (pprof's `ScaledLabel`).
    pub fn format(&self, value: i64) -> String {
        let (scaled, unit) = scale(value, &self.from, &self.to);
        let scaled = format!("{scaled:.2}");
        let scaled = scaled.strip_suffix(".00").unwrap_or(&scaled);
        if scaled == "0" || scaled == "-0" {
            return "0".to_owned();
        }
        format!("{scaled}{unit}")
    }
}

/// A duration of `micros` microseconds in the largest of µs, ms, s, min
/// and h in which it is at least 1 (µs below that), `%.2f` with a trailing
/// ".00" dropped as pprof's values: "850µs", "1.10s", "2.50min", "3h",
/// "0.27µs", "0". For mean lifetimes, which pprof's units do not print
/// (it has no minutes, and writes microseconds "us").
pub fn duration_micros(micros: f64) -> String {
    const UNITS: [(&str, f64); 5] = [
        ("h", 3.6e9),
        ("min", 6e7),
        ("s", 1e6),
        ("ms", 1e3),
        ("µs", 1.0),
    ];
    let (name, factor) = UNITS
        .iter()
        .copied()
        .find(|&(_, factor)| micros.abs() >= factor)
        .unwrap_or(("µs", 1.0));
    let scaled = format!("{:.2}", micros / factor);
    let scaled = scaled.strip_suffix(".00").unwrap_or(&scaled);
    if scaled == "0" || scaled == "-0" {
        return "0".to_owned();
    }
    format!("{scaled}{name}")
}

/// `value` as a percentage of `total`, as pprof prints it: "  100%",
/// "45.94%", " 0.27%", "0.019%".
pub fn percentage(value: i64, total: i64) -> String {
    let ratio = if total == 0 {
        0.0
    } else {
        (value as f64 / total as f64).abs() * 100.0
    };
    if (99.95..=100.05).contains(&ratio) {
        "  100%".to_owned()
    } else if ratio >= 1.0 {
        format!("{ratio:5.2}%")
    } else {
        format!("{:>5}%", go_g2(ratio))
    }
}

/// Go's `%.2g`: two significant digits, exponent form below 1e-4.
fn go_g2(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    let exponent_form = format!("{x:.1e}"); // e.g. "5.2e-5", correctly rounded
    let (mantissa, exponent) = exponent_form.split_once('e').expect("exponent");
    let exponent: i32 = exponent.parse().expect("exponent digits");
    if !(-4..2).contains(&exponent) {
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let decimals = (1 - exponent).max(0) as usize;
    let fixed = format!("{x:.decimals$}");
    if fixed.contains('.') {
        fixed.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        fixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_scale_like_pprof() {
        let mb = Formatter::for_range("bytes", 7 << 20, 71 << 20);
        assert_eq!(mb.format(7_347_202), "7.01MB");
        assert_eq!(mb.format(64 << 20), "64MB");
        assert_eq!(mb.format(0), "0");
        assert_eq!(mb.format(-(1 << 19)), "-0.50MB");
        // A tiny minimum next to a large total moves to the larger unit.
        assert_eq!(
            Formatter::for_range("bytes", 336, 667_983).format(336),
            "0.33kB"
        );
        assert_eq!(Formatter::for_range("bytes", 336, 2000).format(336), "336B");
        assert_eq!(Formatter::for_range("count", 3, 7175).format(7175), "7175");
        assert_eq!(
            Formatter::for_range("nanoseconds", 10_000_000, 1_200_000_000).format(1_200_000_000),
            "1.20s"
        );
        assert_eq!(
            Formatter::for_range("nanoseconds", 100_000_000, 1_200_000_000).format(1_200_000_000),
            "1200ms"
        );
    }

    #[test]
    fn every_time_unit_pprof_knows_is_scaled() {
        // Java contention profiles count microseconds, Node wall ones "us".
        for unit in ["microseconds", "us", "Microsecond"] {
            let us = Formatter::for_range(unit, 200, 1900);
            assert_eq!(
                (us.format(1900), us.format(200)),
                ("1900us".into(), "200us".into())
            );
            let ms = Formatter::for_range(unit, 1900, 1900);
            assert_eq!(ms.format(1900), "1.90ms", "{unit}");
        }
        let ms = Formatter::for_range("milliseconds", 1500, 1500);
        assert_eq!(ms.format(1500), "1.50s");
        assert_eq!(
            Formatter::for_range("seconds", 7200, 7200).format(7200),
            "2hrs"
        );
        assert_eq!(Formatter::for_range("hours", 2, 2).format(2), "2hrs");
        // pprof drops a trailing "s" from "μs" before looking it up, so it
        // never recognizes it: the values print with the unit after them.
        assert_eq!(Formatter::for_range("μs", 5, 5).format(5), "5μs");
    }

    #[test]
    fn other_units_follow_pprofs_rules() {
        // Counts print bare; any other unknown unit follows each value,
        // even "samples" (pprof knows "sample") ...
        assert_eq!(Formatter::for_range("count", 3, 9).format(9), "9");
        assert_eq!(Formatter::for_range("sample", 3, 9).format(9), "9");
        assert_eq!(Formatter::for_range("samples", 3, 9).format(9), "9samples");
        assert_eq!(Formatter::for_range("objects", 3, 9).format(9), "9objects");
        // ... except in a table without rows, where pprof never picks one.
        assert_eq!(Formatter::for_range("objects", 0, 9).format(9), "9");
        assert_eq!(Formatter::for_range("kilobytes", 3, 3).format(3), "3kB");
        // GCU: pprof cannot look its own "m*GCU" up again, and prints the
        // default unit.
        assert_eq!(Formatter::for_range("milligcu", 5, 5).format(5), "0.01GCU");
        assert_eq!(
            Formatter::for_range("gcu", 0, 2500).format(2500),
            "2.50k*GCU"
        );
        assert_eq!(Formatter::for_range("bytes", 0, 0).format(0), "0");
    }

    #[test]
    fn durations_take_the_largest_unit_they_fill() {
        assert_eq!(duration_micros(0.0), "0");
        assert_eq!(duration_micros(0.004), "0");
        assert_eq!(duration_micros(0.27), "0.27µs");
        assert_eq!(duration_micros(850.0), "850µs");
        assert_eq!(duration_micros(1500.0), "1.50ms");
        assert_eq!(duration_micros(1_100_000.0), "1.10s");
        assert_eq!(duration_micros(150e6), "2.50min");
        assert_eq!(duration_micros(3.0 * 3.6e9), "3h");
    }

    #[test]
    fn percentages_match_go_formatting() {
        assert_eq!(percentage(1, 1), "  100%");
        assert_eq!(percentage(4594, 10000), "45.94%");
        assert_eq!(percentage(27, 10000), " 0.27%");
        assert_eq!(percentage(19, 100000), "0.019%");
        assert_eq!(percentage(51, 1000000), "0.0051%");
        assert_eq!(percentage(52, 100000000), "5.2e-05%");
        assert_eq!(percentage(0, 100), "    0%");
        assert_eq!(percentage(5, 0), "    0%");
    }
}
