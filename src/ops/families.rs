//! The metric types the registry encodes: counters and gauges over a fixed set of
//! label values, and a histogram of durations with fixed buckets. Each is a few
//! relaxed atomics: recording takes no lock, and encoding reads what is there.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;

/// A counter per value of one label (`code="1008"`), the values fixed.
#[derive(Debug, Clone)]
pub(crate) struct CounterSet {
    label: &'static str,
    values: &'static [&'static str],
    counts: Arc<[AtomicU64]>,
}

impl CounterSet {
    pub(crate) fn new(label: &'static str, values: &'static [&'static str]) -> Self {
        Self {
            label,
            values,
            counts: values.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn add(&self, index: usize, n: u64) {
        if let Some(count) = self.counts.get(index) {
            count.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self, index: usize) -> u64 {
        self.counts
            .get(index)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// Every label value with its count.
    pub(crate) fn all(&self) -> Vec<(&'static str, u64)> {
        self.values
            .iter()
            .enumerate()
            .map(|(index, value)| (*value, self.get(index)))
            .collect()
    }
}

impl EncodeMetric for CounterSet {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (value, count) in self.all() {
            let labels = [(self.label, value)];
            encoder
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A gauge per value of one label (`transport="ws"`), the values fixed.
#[derive(Debug, Clone)]
pub(crate) struct GaugeSet {
    label: &'static str,
    values: &'static [&'static str],
    levels: Arc<[AtomicI64]>,
}

impl GaugeSet {
    pub(crate) fn new(label: &'static str, values: &'static [&'static str]) -> Self {
        Self {
            label,
            values,
            levels: values.iter().map(|_| AtomicI64::new(0)).collect(),
        }
    }

    pub(crate) fn add(&self, index: usize, n: i64) {
        if let Some(level) = self.levels.get(index) {
            level.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self, index: usize) -> u64 {
        self.levels.get(index).map_or(0, |level| {
            u64::try_from(level.load(Ordering::Relaxed)).unwrap_or(0)
        })
    }
}

impl EncodeMetric for GaugeSet {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (index, value) in self.values.iter().enumerate() {
            let labels = [(self.label, *value)];
            let level = i64::try_from(self.get(index)).unwrap_or(i64::MAX);
            encoder.encode_family(&labels)?.encode_gauge(&level)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// A histogram of durations, in seconds, over fixed bucket bounds. Counts are kept
/// per bucket (not cumulative) so that one observation is three atomic adds.
#[derive(Debug, Clone)]
pub(crate) struct DurationHistogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug)]
struct HistogramInner {
    /// Upper bounds in seconds, and in nanoseconds for the comparison.
    bounds: &'static [f64],
    bounds_nanos: Vec<u64>,
    /// One count per bound and one for +Inf.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        let bounds_nanos = bounds
            .iter()
            .map(|bound| Duration::from_secs_f64(*bound).as_nanos())
            .map(|nanos| u64::try_from(nanos).unwrap_or(u64::MAX))
            .collect();
        Self {
            inner: Arc::new(HistogramInner {
                bounds,
                bounds_nanos,
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn observe(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let inner = &*self.inner;
        let bucket = inner
            .bounds_nanos
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(inner.bounds_nanos.len());
        if let Some(count) = inner.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Cumulative counts per upper bound (the last is +Inf), the count and the sum
    /// in seconds; the count is the +Inf bucket's, so the three always agree.
    pub(crate) fn read(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let inner = &*self.inner;
        let mut running = 0u64;
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&inner.counts)
            .map(|(bound, count)| {
                running = running.saturating_add(count.load(Ordering::Relaxed));
                (bound, running)
            })
            .collect();
        let sum = Duration::from_nanos(inner.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        (buckets, running, sum)
    }
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The encoder adds the per-bucket counts up itself.
        let (cumulative, count, sum) = self.read();
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = cumulative
            .into_iter()
            .map(|(bound, running)| {
                let own = running.saturating_sub(below);
                below = running;
                (bound, own)
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            sum,
            count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
