//! Numbers as pprof prints them: one output unit per table chosen from the
//! smallest and largest values, `%.2f` with a trailing ".00" dropped, and
//! percentages with at least two significant digits.

/// A family of units with their factors relative to the base unit.
struct UnitFamily {
    units: &'static [(&'static str, f64)],
    base: &'static str,
    /// Lower-case aliases of the base unit as they appear in profiles.
    aliases: &'static [&'static str],
}

const MEMORY: UnitFamily = UnitFamily {
    units: &[
        ("B", 1.0),
        ("kB", 1024.0),
        ("MB", 1048576.0),
        ("GB", 1073741824.0),
        ("TB", 1099511627776.0),
        ("PB", 1125899906842624.0),
    ],
    base: "B",
    aliases: &["b", "byte"],
};

const TIME: UnitFamily = UnitFamily {
    units: &[
        ("ns", 1.0),
        ("us", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("hrs", 3.6e12),
    ],
    base: "s",
    aliases: &["ns", "nanosecond"],
};

fn family(sample_unit: &str) -> Option<&'static UnitFamily> {
    let unit = sample_unit.to_lowercase();
    let unit = if unit.len() > 2 {
        unit.trim_end_matches('s').to_owned()
    } else {
        unit
    };
    [&MEMORY, &TIME]
        .into_iter()
        .find(|f| f.aliases.contains(&unit.as_str()))
}

/// How values of one table are printed.
#[derive(Clone, Debug, PartialEq)]
pub struct Formatter {
    /// Unit name shown after each number ("" for plain numbers).
    unit: &'static str,
    /// Base units per output unit.
    factor: f64,
}

impl Formatter {
    /// Plain numbers (counts, unknown units).
    pub fn plain() -> Self {
        Formatter {
            unit: "",
            factor: 1.0,
        }
    }

    /// pprof's choice of one unit for a table whose smallest non-zero node
    /// value is `min` and whose total is `max`, for values in `sample_unit`.
    pub fn for_range(sample_unit: &str, min: i64, max: i64) -> Self {
        let Some(family) = family(sample_unit) else {
            return Formatter::plain();
        };
        let min = if min == 0 { max } else { min };
        let min_unit = auto_unit(family, min);
        let max_unit = auto_unit(family, max);
        let chosen = if min_unit.0 != max_unit.0 && min.unsigned_abs() * 100 < max.unsigned_abs() {
            auto_unit(family, min.saturating_mul(100))
        } else {
            min_unit
        };
        Formatter {
            unit: chosen.0,
            factor: chosen.1,
        }
    }

    /// `value` in this formatter's unit, e.g. "1.50MB", "0", "-512kB".
    pub fn format(&self, value: i64) -> String {
        let scaled = format!("{:.2}", value as f64 / self.factor);
        let scaled = scaled.strip_suffix(".00").unwrap_or(&scaled);
        if scaled == "0" || scaled == "-0" {
            return "0".to_owned();
        }
        format!("{scaled}{}", self.unit)
    }
}

/// The largest unit in which `value` is at least 1 (the base unit if none).
fn auto_unit(family: &UnitFamily, value: i64) -> (&'static str, f64) {
    let value = value.unsigned_abs() as f64;
    family
        .units
        .iter()
        .rev()
        .find(|(_, factor)| value / factor >= 1.0)
        .copied()
        .unwrap_or_else(|| {
            *family
                .units
                .iter()
                .find(|(name, _)| *name == family.base)
                .expect("base unit")
        })
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
