//! What a state rule reads of the activity timestamps, and whether a newer value of one can
//! only delay its findings — taken from the rule's logical plan at planning time, so rule
//! authors declare nothing.
//!
//! A use or a tool call changes little of an identity: a credential's `last_used_at`, the
//! identity's `last_activity_at`, a grant's `last_exercised_at`. Each only moves later. A
//! rule is *deferrable* on such a column when a later value can only make its finding due
//! later: the column appears in no filter, join, grouping, ordering or inner projection,
//! not in `identity`, `sid` or a key column, and `opened_at` and `strict` are non-decreasing
//! in it. The pipeline then need not re-judge the identity on every use: its pending
//! finding is judged again when it falls due (see `pipeline::deferral`). A rule the
//! analysis cannot prove deferrable is judged eagerly on every use.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, LogicalPlan, Operator, TryCast};

/// An activity timestamp of the state tables that only ever moves later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fact {
    /// `credentials.last_used_at`.
    LastUsed = 0,
    /// `identities.last_activity_at`.
    LastActivity = 1,
    /// `grants.last_exercised_at`.
    LastExercised = 2,
}

impl Fact {
    /// Every fact, in index order.
    pub const ALL: [Fact; 3] = [Fact::LastUsed, Fact::LastActivity, Fact::LastExercised];

    /// The state-table column holding it (the name is unique among the state tables).
    pub fn column(self) -> &'static str {
        match self {
            Fact::LastUsed => "last_used_at",
            Fact::LastActivity => "last_activity_at",
            Fact::LastExercised => "last_exercised_at",
        }
    }

    /// The column of the same row it counts from while unknown (a credential's issue, an
    /// identity's registration, a grant's time), as rules write `COALESCE(fact, floor)`.
    pub fn floor(self) -> &'static str {
        match self {
            Fact::LastUsed => "issued_at",
            Fact::LastActivity => "registered_at",
            Fact::LastExercised => "granted_at",
        }
    }
}

/// How one rule reads the activity facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Whether the rule reads the fact at all, by [`Fact`] index.
    pub reads: [bool; 3],
    /// Whether a later value of the fact can only delay the rule's findings.
    pub deferrable: [bool; 3],
    /// Whether a first value, not before the fact's [`Fact::floor`], can only delay them:
    /// the rule reads the fact only as `COALESCE(fact, floor)` in `opened_at` and `strict`.
    pub deferrable_from_null: [bool; 3],
}

impl Footprint {
    /// Whether the rule reads `fact`.
    pub fn reads(&self, fact: Fact) -> bool {
        self.reads[fact as usize]
    }

    /// Whether the rule reads `fact` and a later value can only delay its findings.
    pub fn defers(&self, fact: Fact) -> bool {
        self.reads[fact as usize] && self.deferrable[fact as usize]
    }

    /// Whether the rule reads `fact` and a first value (not before its floor) can only
    /// delay its findings.
    pub fn defers_from_null(&self, fact: Fact) -> bool {
        self.defers(fact) && self.deferrable_from_null[fact as usize]
    }
}

/// Analyses a state rule's (unoptimised) logical plan; `fixed` are its output columns that
/// name the finding (`identity`, `sid`, the key columns).
pub fn analyse(plan: &LogicalPlan, fixed: &[&str]) -> Footprint {
    let mut footprint = Footprint::default();
    for fact in Fact::ALL {
        let i = fact as usize;
        (footprint.reads[i], footprint.deferrable[i]) = analyse_fact(plan, fixed, fact, false);
        footprint.deferrable_from_null[i] = analyse_fact(plan, fixed, fact, true).1;
    }
    footprint
}

fn analyse_fact(plan: &LogicalPlan, fixed: &[&str], fact: Fact, from_null: bool) -> (bool, bool) {
    let column = fact.column();
    let floor = from_null.then(|| fact.floor());
    // Every node but the top projection must not look at the column.
    let mut inner_use = false;
    let mut reads = false;
    let root_is_projection = matches!(plan, LogicalPlan::Projection(_));
    let _ = plan.apply_with_subqueries(|node| {
        let is_root = std::ptr::eq(node, plan);
        for expr in node.expressions() {
            if mentions(&expr, column) {
                reads = true;
                if !(is_root && root_is_projection) {
                    inner_use = true;
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if !reads {
        return (false, true);
    }
    let LogicalPlan::Projection(top) = plan else {
        return (true, false);
    };
    if inner_use {
        return (true, false);
    }
    let safe = top
        .expr
        .iter()
        .zip(top.schema.fields())
        .all(|(expr, field)| {
            if !mentions(expr, column) {
                return true;
            }
            match field.name().as_str() {
                "opened_at" | "strict" => matches!(
                    direction(expr, column, floor),
                    Some(Direction::Up | Direction::Const)
                ),
                name => !fixed.contains(&name),
            }
        });
    (true, safe)
}

/// Whether `expr` refers to `column` (or may, through a wildcard).
fn mentions(expr: &Expr, column: &str) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        #[allow(deprecated)]
        let hit = match e {
            Expr::Column(c) => c.name == column,
            Expr::Wildcard { .. } => true,
            _ => false,
        };
        found |= hit;
        Ok(if hit {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// How an expression moves when the column grows (from a non-null value to a larger one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Const,
    Up,
    Down,
}

impl Direction {
    fn flip(self) -> Direction {
        match self {
            Direction::Up => Direction::Down,
            Direction::Down => Direction::Up,
            Direction::Const => Direction::Const,
        }
    }

    /// The direction of a function non-decreasing in every argument.
    fn combine(self, other: Direction) -> Option<Direction> {
        match (self, other) {
            (Direction::Const, d) | (d, Direction::Const) => Some(d),
            (a, b) if a == b => Some(a),
            _ => None,
        }
    }
}

/// The direction of `expr` in `column`, when it can be proven; `None` when not. With a
/// `floor`, for the column's first value (not before the floor column): only
/// `COALESCE(column, floor)` then grows, a bare column appears from nothing.
fn direction(expr: &Expr, column: &str, floor: Option<&str>) -> Option<Direction> {
    if !mentions(expr, column) {
        return Some(Direction::Const);
    }
    let is_column = |e: &Expr, name: &str| matches!(e, Expr::Column(c) if c.name == name);
    match expr {
        Expr::Column(c) if c.name == column => floor.is_none().then_some(Direction::Up),
        Expr::ScalarFunction(f)
            if floor.is_some()
                && f.name() == "coalesce"
                && f.args.len() == 2
                && is_column(&f.args[0], column)
                && floor.is_some_and(|floor| is_column(&f.args[1], floor)) =>
        {
            Some(Direction::Up)
        }
        Expr::Alias(alias) => direction(&alias.expr, column, floor),
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
            if field.data_type().is_temporal() || field.data_type().is_integer() =>
        {
            direction(expr, column, floor)
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (l, r) = (
                direction(left, column, floor)?,
                direction(right, column, floor)?,
            );
            match op {
                Operator::Plus => l.combine(r),
                Operator::Minus => l.combine(r.flip()),
                // A comparison is false then true as its left side grows past the right.
                Operator::Gt | Operator::GtEq => l.combine(r.flip()),
                Operator::Lt | Operator::LtEq => l.flip().combine(r),
                _ => None,
            }
        }
        // With the column non-null before and after, COALESCE yields an earlier non-null
        // argument (unchanged) or the column; GREATEST and LEAST follow their arguments.
        Expr::ScalarFunction(f) if matches!(f.name(), "coalesce" | "greatest" | "least") => {
            f.args.iter().try_fold(Direction::Const, |acc, arg| {
                acc.combine(direction(arg, column, floor)?)
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tables;
    use datafusion::prelude::SessionContext;
    use std::sync::Arc;

    async fn footprint(sql: &str) -> Footprint {
        let ctx = SessionContext::new();
        for (name, schema) in tables::all_schemas() {
            let table = Arc::new(crate::engine::swap::SwapTable::new(schema));
            ctx.register_table(name, table).unwrap();
        }
        let frame = ctx.sql(sql).await.unwrap();
        analyse(
            frame.logical_plan(),
            &["identity", "sid", "credential", "scope"],
        )
    }

    #[tokio::test]
    async fn a_dormancy_deadline_defers_on_the_last_use() {
        let f = footprint(
            "SELECT sid, identity, credential, last_used_at,
                    COALESCE(last_used_at, issued_at) + INTERVAL '45 days' AS opened_at,
                    true AS strict
             FROM credentials",
        )
        .await;
        assert!(f.defers(Fact::LastUsed));
        assert!(f.defers_from_null(Fact::LastUsed));
        assert!(!f.reads(Fact::LastActivity));
        let f = footprint(
            "SELECT sid, identity, last_activity_at,
                    GREATEST(COALESCE(last_activity_at, registered_at) + INTERVAL '90 days', holding_since) AS opened_at,
                    COALESCE(last_activity_at, registered_at) + INTERVAL '90 days' >= holding_since AS strict
             FROM identities WHERE holding_since IS NOT NULL",
        )
        .await;
        assert!(f.defers(Fact::LastActivity));
        assert!(f.defers_from_null(Fact::LastActivity));
    }

    #[tokio::test]
    async fn the_bundled_dormancy_rules_defer_and_the_others_read_no_activity() {
        let config = crate::config::Config::load_with_env(None, Vec::new()).unwrap();
        let rules = crate::engine::rule::load_rules(None).unwrap();
        let engine = crate::engine::Engine::new(rules, &config.rule_params)
            .await
            .unwrap();
        for (rule, f) in engine.rules().iter().zip(engine.footprints()) {
            let expected = match rule.id.as_str() {
                "NHI-STALE-001" => Some(Fact::LastUsed),
                "NHI-STALE-002" => Some(Fact::LastActivity),
                "NHI-SCOPE-003" => Some(Fact::LastExercised),
                _ => None,
            };
            for fact in Fact::ALL {
                let reads = expected == Some(fact);
                assert_eq!(f.reads(fact), reads, "{} reads {fact:?}", rule.id);
                assert_eq!(
                    f.defers_from_null(fact),
                    reads,
                    "{} defers {fact:?}",
                    rule.id
                );
            }
        }
    }

    #[tokio::test]
    async fn a_bare_column_defers_only_once_known() {
        // From NULL to a value the row's opened_at appears from nothing.
        let f = footprint(
            "SELECT sid, identity, credential, last_used_at + INTERVAL '1 day' AS opened_at
             FROM credentials",
        )
        .await;
        assert!(f.defers(Fact::LastUsed));
        assert!(!f.defers_from_null(Fact::LastUsed));
        // Counting from another column than the floor.
        let f = footprint(
            "SELECT sid, identity, credential, COALESCE(last_used_at, expires) AS opened_at
             FROM credentials",
        )
        .await;
        assert!(f.defers(Fact::LastUsed));
        assert!(!f.defers_from_null(Fact::LastUsed));
    }

    #[tokio::test]
    async fn a_rule_that_filters_or_counts_down_on_the_column_is_eager() {
        for sql in [
            // A use can make the row appear.
            "SELECT sid, identity, credential, issued_at AS opened_at FROM credentials
             WHERE last_used_at > issued_at",
            // A later use makes the finding due earlier.
            "SELECT sid, identity, credential, issued_at - (last_used_at - issued_at) AS opened_at
             FROM credentials",
            // Through a subquery the analysis does not follow.
            "SELECT sid, identity, credential, t AS opened_at
             FROM (SELECT sid, identity, credential, last_used_at AS t FROM credentials)",
            // Not provably monotone.
            "SELECT sid, identity, credential,
                    CASE WHEN last_used_at IS NULL THEN issued_at ELSE last_used_at END AS opened_at
             FROM credentials",
            // In the finding's key.
            "SELECT sid, identity, CAST(last_used_at AS VARCHAR) AS credential, issued_at AS opened_at
             FROM credentials",
        ] {
            let f = footprint(sql).await;
            assert!(f.reads(Fact::LastUsed), "{sql}");
            assert!(!f.defers(Fact::LastUsed), "{sql}");
        }
    }

    #[tokio::test]
    async fn evidence_columns_do_not_stop_deferring() {
        let f = footprint(
            "SELECT g.sid, g.identity, g.scope, g.last_exercised_at,
                    CAST(g.last_exercised_at AS VARCHAR) AS seen_text,
                    GREATEST(g.granted_at, COALESCE(g.last_exercised_at, g.granted_at)) + INTERVAL '90 days' AS opened_at
             FROM grants g JOIN identities i ON g.sid = i.sid WHERE i.offboarded_at IS NULL",
        )
        .await;
        assert!(f.defers(Fact::LastExercised));
    }
}
