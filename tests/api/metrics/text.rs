//! A strict reader of the Prometheus text format (0.0.4), written here so that the test does
//! not trust the encoder it checks.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A scrape, parsed: the samples and each family's declared type.
#[derive(Debug)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// The value of the one sample named `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut matching = self.samples.iter().filter(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        });
        let found = matching.next()?;
        assert!(matching.next().is_none(), "several {name} match {labels:?}");
        Some(found.value)
    }

    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.value(name, labels).is_some()
    }

    /// Every sample name a query may use: each family, plus a histogram's series.
    pub fn exported_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (family, kind) in &self.types {
            names.insert(family.clone());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{family}{suffix}"));
                }
            }
        }
        names
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok =
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    is_metric_name(name) && !name.contains(':')
}

/// Parses `{a="1",b="x\"y"}` (after the metric name) into labels and the rest of the line.
fn parse_labels(text: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = text.strip_prefix('{') else {
        return (labels, text);
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (name, after_name) = rest.split_once("=\"").expect("label=\"value\"");
        assert!(is_label_name(name), "bad label name {name:?}");
        let mut value = String::new();
        let mut chars = after_name.char_indices();
        let end = loop {
            match chars.next().expect("a closed label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("an escape").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("bad escape \\{other}"),
                },
                (_, c) => value.push(c),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "label {name} twice"
        );
        rest = &after_name[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// A strict reader of the Prometheus text format 0.0.4: every line is a HELP, a TYPE or a
/// sample of a declared family; histogram buckets are cumulative and end with `+Inf` = `_count`.
pub fn parse_prometheus_text(text: &str) -> Scrape {
    assert!(text.ends_with('\n'), "the text ends with a newline");
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let (keyword, rest) = comment.split_once(' ').expect("# KEYWORD name ...");
            let (name, detail) = rest.split_once(' ').expect("# KEYWORD name detail");
            assert!(is_metric_name(name), "bad name in {line:?}");
            match keyword {
                "HELP" => assert!(!detail.is_empty(), "{line:?}"),
                "TYPE" => {
                    let kinds = ["counter", "gauge", "histogram", "summary", "untyped"];
                    assert!(kinds.contains(&detail), "{line:?}");
                    let previous = types.insert(name.to_string(), detail.to_string());
                    assert!(previous.is_none(), "{name} typed twice");
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a sample: name value");
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad name in {line:?}");
        let (labels, rest) = parse_labels(&line[name_end..]);
        let value_text = rest.strip_prefix(' ').expect("a space before the value");
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    for sample in &samples {
        let family_opt = types.keys().find(|family| {
            let is_histogram = types[*family] == "histogram";
            sample.name == **family
                || (is_histogram
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| sample.name == format!("{family}{suffix}")))
        });
        assert!(family_opt.is_some(), "{} has no TYPE line", sample.name);
    }
    check_histograms(&samples, &types);
    Scrape { samples, types }
}

/// One histogram bucket: its `le` and its cumulative count.
type Bucket = (String, f64);

fn check_histograms(samples: &[Sample], types: &BTreeMap<String, String>) {
    for (family, kind) in types {
        if kind != "histogram" {
            continue;
        }
        // Buckets per series (labels without `le`), in the order they were written.
        let mut buckets: BTreeMap<Vec<(String, String)>, Vec<Bucket>> = BTreeMap::new();
        for sample in samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut labels = sample.labels.clone();
            let le = labels.remove("le").expect("a bucket has le");
            buckets
                .entry(labels.into_iter().collect())
                .or_default()
                .push((le, sample.value));
        }
        for (labels, series) in buckets {
            let counts: Vec<f64> = series.iter().map(|(_, count)| *count).collect();
            assert!(
                counts.windows(2).all(|pair| pair[0] <= pair[1]),
                "{family} {labels:?}"
            );
            let (last_le, last_count) = series.last().unwrap();
            assert_eq!(last_le, "+Inf", "{family} {labels:?}");
            let label_refs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let count_opt = samples.iter().find(|s| {
                s.name == format!("{family}_count")
                    && label_refs
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            });
            assert_eq!(
                count_opt.map(|s| s.value),
                Some(*last_count),
                "{family} {labels:?}"
            );
        }
    }
}
