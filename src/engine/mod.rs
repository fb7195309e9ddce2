//! The query engine: every rule planned once over [`swap::SwapTable`]s, re-executed per
//! evaluation batch, results turned into [`Finding`]s.
//!
//! Rule authors' contract (see `docs/rules.md`): a query returns `identity`, its key
//! columns, `opened_at`; state rules also `sid` and may return `strict` (the finding holds
//! only once *now* is past `opened_at`, not at it); window rules also `window_start` and
//! `window_end`. Every other column becomes evidence.

pub mod evidence;
pub mod footprint;
pub mod rule;
pub mod swap;
pub mod tables;

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, TimeUnit, TimestampMicrosecondType, UInt64Type};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::event::Micros;
use footprint::Footprint;
use rule::{Rule, RuleError, RuleKind, RuleParams, placeholders};
use swap::SwapTable;

/// Errors while evaluating (planning errors are [`RuleError`]s).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// DataFusion failed executing a rule.
    #[error("rule {rule} failed: {source}")]
    Execute {
        rule: String,
        #[source]
        source: DataFusionError,
    },
    /// Building or reading Arrow data failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// One row a rule returned: a finding candidate. Its summary and evidence are rendered
/// only when it becomes an alert ([`Engine::render`]), since most state candidates are
/// replaced before they are ever due.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// Index of the rule in [`Engine::rules`].
    pub rule: usize,
    pub identity: String,
    /// Key fields with a value, in the rule's key order.
    pub key: Vec<(String, String)>,
    pub opened_at: Micros,
    /// Whether the finding holds only once *now* > `opened_at`.
    pub strict: bool,
    /// State rules: the snapshot the row came from.
    pub sid: Option<u64>,
    /// Window rules: the window.
    pub window: Option<(Micros, Micros)>,
    /// Where the row is: the run that produced it, and the batch and row in its [`Results`].
    pub row: RowRef,
}

impl Finding {
    /// The moment from which the finding holds: `opened_at`, or just after it when strict.
    pub fn due_at(&self) -> Micros {
        self.opened_at.saturating_add(i64::from(self.strict))
    }
}

/// What one rule found in one [`Engine::run`].
#[derive(Debug, Default)]
pub struct Found {
    pub findings: Vec<Finding>,
    /// State rules: (snapshot id, due time) of each candidate due after the run's
    /// horizon, which only sets when its identity is judged again.
    pub later: Vec<(u64, Micros)>,
}

/// A row of one run's [`Results`]. The run number keeps a finding from an earlier run
/// from being rendered with another run's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowRef {
    pub run: u64,
    pub batch: u32,
    pub row: u32,
}

/// A finding's text: the summary and the evidence object.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Rendered {
    pub summary: String,
    /// Kept as JSON text in checkpoints, whose binary form holds no free-form values.
    #[serde(with = "evidence_text")]
    pub evidence: serde_json::Map<String, serde_json::Value>,
}

/// An evidence object written as its JSON text.
mod evidence_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    type Map = serde_json::Map<String, serde_json::Value>;

    pub fn serialize<S: Serializer>(map: &Map, serializer: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(map).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Map, D::Error> {
        let text = String::deserialize(deserializer)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}

/// The result batches of one [`Engine::run`], kept for rendering findings.
#[derive(Debug, Default)]
pub struct Results {
    run: u64,
    batches: Vec<(usize, RecordBatch)>,
}

impl Results {
    /// The run's number (a finding's [`RowRef::run`]).
    pub fn run(&self) -> u64 {
        self.run
    }
}

/// Column positions of a rule's output, resolved once at planning.
#[derive(Debug)]
struct Output {
    identity: usize,
    opened_at: usize,
    sid: Option<usize>,
    strict: Option<usize>,
    window: Option<(usize, usize)>,
    key: Vec<(String, usize)>,
    evidence: Vec<(String, usize)>,
}

#[derive(Debug)]
struct Planned {
    plan: Arc<dyn ExecutionPlan>,
    output: Output,
    params: serde_json::Map<String, serde_json::Value>,
    param_text: Vec<(String, String)>,
    footprint: Footprint,
}

/// All rules, planned once, executed per batch.
pub struct Engine {
    ctx: SessionContext,
    tables: Vec<Arc<SwapTable>>,
    rules: Vec<Rule>,
    planned: Vec<Planned>,
    /// Runs so far; numbers each run's [`Results`].
    runs: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl Engine {
    /// Plans every rule against the table schemas; the first broken rule names its file.
    pub async fn new(rules: Vec<Rule>, params: &RuleParams) -> Result<Engine, RuleError> {
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(8192)
            .with_repartition_joins(false)
            .with_repartition_aggregations(false)
            .with_repartition_sorts(false);
        let ctx = SessionContext::new_with_config(config);
        let mut tables = Vec::new();
        for (name, schema) in tables::all_schemas() {
            let table = Arc::new(SwapTable::new(schema));
            ctx.register_table(name, Arc::clone(&table) as _)
                .map_err(|e| RuleError::new("tables".as_ref(), e.to_string()))?;
            tables.push(table);
        }
        let mut planned = Vec::with_capacity(rules.len());
        for rule in &rules {
            planned.push(plan_rule(&ctx, rule, params).await?);
        }
        Ok(Engine {
            ctx,
            tables,
            rules,
            planned,
            runs: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The loaded rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How each rule reads the activity facts, by rule index (window rules read none of
    /// the state tables' facts).
    pub fn footprints(&self) -> Vec<Footprint> {
        self.planned.iter().map(|p| p.footprint).collect()
    }

    /// Runs so far (kept in checkpoints so run numbers never repeat after a restart).
    pub fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Continues numbering runs after `runs` (restoring a checkpoint).
    pub fn continue_runs_after(&self, runs: u64) {
        self.runs
            .fetch_max(runs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs the rules of the given kinds over `batches` (one per table, in
    /// [`tables::all_schemas`] order); calls `each` with the rule index, its findings and
    /// how long the rule took.
    /// Runs the rules of `kinds` over `batches` (in [`tables::all_schemas`] order) and
    /// hands each rule's findings to `each`. A state rule's candidate due only after
    /// `later_than` (the last evaluation these tables serve) can neither open nor keep an
    /// alert open in this run: it is not made into a finding, only its snapshot and due
    /// time are reported ([`Found::later`]).
    pub async fn run(
        &self,
        batches: Vec<RecordBatch>,
        kinds: &[RuleKind],
        later_than: Micros,
        mut each: impl FnMut(usize, Found, std::time::Duration),
    ) -> Result<Results, EngineError> {
        let mut out = Results {
            run: self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            batches: Vec::new(),
        };
        for (table, batch) in self.tables.iter().zip(batches) {
            table.set(batch);
        }
        for (index, (rule, planned)) in self.rules.iter().zip(&self.planned).enumerate() {
            if !kinds.contains(&rule.kind) {
                continue;
            }
            let started = std::time::Instant::now();
            let execute = |source| EngineError::Execute {
                rule: rule.id.clone(),
                source,
            };
            let plan = reset_plan_states(Arc::clone(&planned.plan)).map_err(execute)?;
            let results = collect(plan, self.ctx.task_ctx()).await.map_err(execute)?;
            let mut found = Found::default();
            for batch in results {
                if batch.num_rows() == 0 {
                    continue;
                }
                let position = RowRef {
                    run: out.run,
                    batch: out.batches.len() as u32,
                    row: 0,
                };
                findings_of(index, planned, &batch, position, later_than, &mut found)?;
                out.batches.push((index, batch));
            }
            each(index, found, started.elapsed());
        }
        // Release the batch's memory now rather than at the next evaluation.
        for (table, (_, schema)) in self.tables.iter().zip(tables::all_schemas()) {
            table.set(RecordBatch::new_empty(schema));
        }
        Ok(out)
    }

    /// Renders a finding of `results`: the summary with placeholders filled and the
    /// evidence (every non-key column plus the rule's thresholds).
    pub fn render(&self, results: &Results, finding: &Finding) -> Rendered {
        let origin = finding.row;
        let found = (origin.run == results.run)
            .then(|| results.batches.get(origin.batch as usize))
            .flatten();
        let Some((rule_index, batch)) = found else {
            debug_assert!(false, "finding rendered with the results of another run");
            return Rendered::default();
        };
        let (rule, planned) = (&self.rules[*rule_index], &self.planned[*rule_index]);
        let row = origin.row as usize;
        let mut evidence = serde_json::Map::new();
        for (name, i) in &planned.output.evidence {
            evidence.insert(name.clone(), evidence::json_value(batch.column(*i), row));
        }
        if !planned.params.is_empty() {
            evidence.insert(
                "thresholds".to_owned(),
                serde_json::Value::Object(planned.params.clone()),
            );
        }
        Rendered {
            summary: render_summary(&rule.summary, batch, row, &planned.param_text),
            evidence,
        }
    }
}

async fn plan_rule(
    ctx: &SessionContext,
    rule: &Rule,
    params: &RuleParams,
) -> Result<Planned, RuleError> {
    let sql = rule.render_sql(params)?;
    let fail = |e: DataFusionError| RuleError::new(&rule.path, format!("{} ({})", e, rule.id));
    let frame = ctx.sql(&sql).await.map_err(fail)?;
    let footprint = match rule.kind {
        RuleKind::State => {
            let fixed: Vec<&str> = ["identity", "sid"]
                .into_iter()
                .chain(rule.key.iter().map(String::as_str))
                .collect();
            footprint::analyse(frame.logical_plan(), &fixed)
        }
        RuleKind::Window => Footprint::default(),
    };
    let plan = frame.create_physical_plan().await.map_err(fail)?;
    let output = resolve_output(rule, &plan.schema())?;
    let mut param_map = serde_json::Map::new();
    let mut param_text = Vec::new();
    for (name, value) in params.of_rule(&rule.name) {
        if rule.params().contains(&name) {
            param_map.insert(name.clone(), value.to_json());
            param_text.push((name, value.to_string()));
        }
    }
    let known: BTreeSet<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .chain(param_text.iter().map(|(n, _)| n.clone()))
        .collect();
    for name in placeholders(&rule.summary, "{", "}") {
        if !known.contains(&name) {
            return Err(RuleError::new(
                &rule.path,
                format!(
                    "summary uses {{{name}}}, which is neither an output column nor a threshold"
                ),
            ));
        }
    }
    Ok(Planned {
        plan,
        output,
        params: param_map,
        param_text,
        footprint,
    })
}

fn resolve_output(rule: &Rule, schema: &Schema) -> Result<Output, RuleError> {
    let find = |name: &str, want: fn(&DataType) -> bool, what: &str| match schema
        .fields()
        .iter()
        .position(|f| f.name() == name)
    {
        Some(i) if want(schema.field(i).data_type()) => Ok(Some(i)),
        Some(i) => Err(RuleError::new(
            &rule.path,
            format!(
                "output column `{name}` must be {what}, is {}",
                schema.field(i).data_type()
            ),
        )),
        None => Ok(None),
    };
    let required = |name: &str, want: fn(&DataType) -> bool, what: &str| {
        find(name, want, what)?.ok_or_else(|| {
            RuleError::new(
                &rule.path,
                format!(
                    "a {} rule must return a `{name}` column ({what})",
                    rule.kind.as_str()
                ),
            )
        })
    };
    let is_str =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let is_ts = |t: &DataType| matches!(t, DataType::Timestamp(_, _));
    let identity = required("identity", is_str, "a string")?;
    let opened_at = required("opened_at", is_ts, "a timestamp")?;
    let strict = find("strict", |t| *t == DataType::Boolean, "a boolean")?;
    let (sid, window) = match rule.kind {
        RuleKind::State => (
            Some(required(
                "sid",
                |t| *t == DataType::UInt64,
                "UInt64 from a state table",
            )?),
            None,
        ),
        RuleKind::Window => (
            None,
            Some((
                required("window_start", is_ts, "a timestamp")?,
                required("window_end", is_ts, "a timestamp")?,
            )),
        ),
    };
    let mut key = Vec::new();
    for field in &rule.key {
        key.push((field.clone(), required(field, is_str, "a string")?));
    }
    let special: BTreeSet<usize> = [Some(identity), Some(opened_at), strict, sid]
        .into_iter()
        .flatten()
        .chain(window.map(|(a, _)| a))
        .chain(window.map(|(_, b)| b))
        .chain(key.iter().map(|(_, i)| *i))
        .collect();
    let evidence = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| !special.contains(i))
        .map(|(i, f)| (f.name().clone(), i))
        .collect();
    Ok(Output {
        identity,
        opened_at,
        sid,
        strict,
        window,
        key,
        evidence,
    })
}

fn timestamps(batch: &RecordBatch, column: usize) -> Result<Arc<dyn Array>, EngineError> {
    Ok(cast(
        batch.column(column),
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    )?)
}

fn strings(batch: &RecordBatch, column: usize) -> Result<Arc<dyn Array>, EngineError> {
    Ok(cast(batch.column(column), &DataType::Utf8)?)
}

fn findings_of(
    index: usize,
    planned: &Planned,
    batch: &RecordBatch,
    position: RowRef,
    later_than: Micros,
    found: &mut Found,
) -> Result<(), EngineError> {
    let out_cols = &planned.output;
    let out = &mut found.findings;
    let identity = strings(batch, out_cols.identity)?;
    let identity = identity.as_string::<i32>();
    let opened = timestamps(batch, out_cols.opened_at)?;
    let opened = opened.as_primitive::<TimestampMicrosecondType>();
    let keys: Vec<(String, Arc<dyn Array>)> = out_cols
        .key
        .iter()
        .map(|(name, i)| Ok((name.clone(), strings(batch, *i)?)))
        .collect::<Result<_, EngineError>>()?;
    let window = match out_cols.window {
        Some((s, e)) => Some((timestamps(batch, s)?, timestamps(batch, e)?)),
        None => None,
    };
    for row in 0..batch.num_rows() {
        // Rows without an identity or opened_at cannot become alerts; a rule returning
        // them is filtered rather than failing the whole evaluation.
        if identity.is_null(row) || opened.is_null(row) {
            continue;
        }
        let sid = out_cols
            .sid
            .map(|i| batch.column(i).as_primitive::<UInt64Type>().value(row));
        let strict = out_cols.strict.is_some_and(|i| {
            let col = batch.column(i).as_boolean();
            !col.is_null(row) && col.value(row)
        });
        let due = opened.value(row).saturating_add(i64::from(strict));
        if let Some(sid) = sid
            && due > later_than
        {
            found.later.push((sid, due));
            continue;
        }
        let key = keys
            .iter()
            .filter(|(_, col)| !col.is_null(row))
            .map(|(name, col)| (name.clone(), col.as_string::<i32>().value(row).to_owned()))
            .collect();
        let window = window.as_ref().map(|(s, e)| {
            (
                s.as_primitive::<TimestampMicrosecondType>().value(row),
                e.as_primitive::<TimestampMicrosecondType>().value(row),
            )
        });
        out.push(Finding {
            rule: index,
            identity: identity.value(row).to_owned(),
            key,
            opened_at: opened.value(row),
            strict,
            sid,
            window,
            row: RowRef {
                row: row as u32,
                ..position
            },
        });
    }
    Ok(())
}

fn render_summary(
    template: &str,
    batch: &RecordBatch,
    row: usize,
    params: &[(String, String)],
) -> String {
    let mut text = template.to_owned();
    for name in placeholders(template, "{", "}") {
        let value = match batch.schema().index_of(&name) {
            Ok(i) => evidence::display_value(batch.column(i), row),
            Err(_) => params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        };
        text = text.replace(&format!("{{{name}}}"), &value);
    }
    text
}
