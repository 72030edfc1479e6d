//! The diff of two snapshots into typed API changes, with canonical-id dedupe of re-exports and
//! the filters (TypeVars, name-mangled parameters, members of removed or added classes).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::snapshot::{Param, Snapshot, Symbol, WarningSeen};

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A public symbol is gone (not reachable under any of its paths).
    Removed,
    /// A new public symbol.
    Added,
    /// Removed + added in the same scope with a similar name (or named by the old one's warning).
    Renamed,
    /// Same object, its main public path moved.
    Moved,
    /// A parameter was added.
    ParamAdded,
    /// A parameter was removed.
    ParamRemoved,
    /// A parameter at the same position has a new name.
    ParamRenamed,
    /// A parameter's default changed (or it gained/lost one).
    DefaultChanged,
    /// The symbol's kind changed (function ↔ class, …).
    KindChanged,
    /// Accessing it warns in the new version and did not in the old.
    Deprecated,
    /// A class member was added.
    MemberAdded,
    /// A class member was removed.
    MemberRemoved,
}

impl ChangeKind {
    /// The snake_case name used in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Removed => "removed",
            ChangeKind::Added => "added",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Moved => "moved",
            ChangeKind::ParamAdded => "param_added",
            ChangeKind::ParamRemoved => "param_removed",
            ChangeKind::ParamRenamed => "param_renamed",
            ChangeKind::DefaultChanged => "default_changed",
            ChangeKind::KindChanged => "kind_changed",
            ChangeKind::Deprecated => "deprecated",
            ChangeKind::MemberAdded => "member_added",
            ChangeKind::MemberRemoved => "member_removed",
        }
    }

    /// Whether old code using the old API is expected to break or warn on the new version
    /// (as opposed to new code failing on the old version).
    pub fn is_breaking(self) -> bool {
        !matches!(
            self,
            ChangeKind::Added | ChangeKind::MemberAdded | ChangeKind::ParamAdded
        )
    }
}

/// Evidence attached to a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Warnings seen on access (old version for removals/renames, new for deprecations).
    #[serde(default)]
    pub warnings: Vec<WarningSeen>,
    /// Changelog lines naming the symbol (with `--sdist`).
    #[serde(default)]
    pub changelog: Vec<String>,
    /// A docstring says "deprecated" (weak).
    #[serde(default)]
    pub doc_deprecated: bool,
}

/// One typed API change between two versions (a line of `changes.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiChange {
    /// Stable id: `dist@old..new:kind:symbol[>new_symbol][:param[>new_param]]`; `verify` reads
    /// the names back from it ([`ChangeRef::parse`]).
    pub id: String,
    /// Distribution (PyPI name).
    pub dist: String,
    /// Old version.
    pub old_version: String,
    /// New version.
    pub new_version: String,
    /// Interpreter both snapshots ran on.
    pub python: String,
    /// Kind of change.
    pub kind: ChangeKind,
    /// Public path (the old one for removals and renames).
    pub symbol: String,
    /// Canonical id (defining module and qualname).
    pub canonical: String,
    /// Kind of the symbol (`class`, `function`, `method`, …).
    pub symbol_kind: String,
    /// New path of a renamed or moved symbol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_symbol: Option<String>,
    /// Parameter concerned (old name for renames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// New parameter name of a parameter rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_param: Option<String>,
    /// Old signature.
    pub old_signature: Option<String>,
    /// New signature.
    pub new_signature: Option<String>,
    /// Other public paths of the same object.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Warnings, changelog lines, docstring marks.
    #[serde(default)]
    pub evidence: Evidence,
}

impl ApiChange {
    /// Last component of the symbol (`LegacyVersion`).
    pub fn leaf(&self) -> &str {
        leaf(&self.symbol)
    }
}

/// Last dotted component.
pub fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Parent of a dotted path (`a.b.C.m` → `a.b.C`).
fn parent(path: &str) -> &str {
    path.rsplit_once('.').map(|(p, _)| p).unwrap_or("")
}

/// Which version pair and interpreter a diff is about.
#[derive(Debug, Clone)]
pub struct DiffContext {
    /// Distribution.
    pub dist: String,
    /// Old version.
    pub old_version: String,
    /// New version.
    pub new_version: String,
    /// Interpreter version.
    pub python: String,
}

/// Changes dropped by a filter, counted by filter name.
pub type FilterCounts = BTreeMap<String, usize>;

const DEPRECATION_CATEGORIES: [&str; 3] = [
    "DeprecationWarning",
    "PendingDeprecationWarning",
    "FutureWarning",
];

fn is_deprecation(w: &WarningSeen) -> bool {
    DEPRECATION_CATEGORIES.contains(&w.category.as_str())
}

/// Name similarity in [0, 1], ignoring case and underscores (`resultcallback` ~ `result_callback`).
fn similarity(a: &str, b: &str) -> f64 {
    let n = |s: &str| s.to_lowercase().replace('_', "");
    let (a, b) = (n(a), n(b));
    let max = a.chars().count().max(b.chars().count()).max(1);
    1.0 - recode_reward::levenshtein(&a, &b) as f64 / max as f64
}

/// Diffs two snapshots. Returns the changes (deduplicated by canonical id) and what the filters
/// dropped.
pub fn diff(old: &Snapshot, new: &Snapshot, ctx: &DiffContext) -> (Vec<ApiChange>, FilterCounts) {
    let mut filtered = FilterCounts::new();
    let mut count = |name: &str| *filtered.entry(name.to_string()).or_default() += 1;
    let keep = |s: &&Symbol| s.kind != "typevar";
    for s in old
        .symbols
        .iter()
        .chain(&new.symbols)
        .filter(|s| s.kind == "typevar")
    {
        let _ = s;
        count("typevar");
    }
    let helper = |snap: &Snapshot, s: &Symbol| s.is_private_helper(&snap.top_level);
    for _ in old
        .symbols
        .iter()
        .filter(|s| helper(old, s))
        .chain(new.symbols.iter().filter(|s| helper(new, s)))
    {
        count("private_helper");
    }
    let old_syms: Vec<&Symbol> = old
        .symbols
        .iter()
        .filter(keep)
        .filter(|s| !helper(old, s))
        .collect();
    let new_syms: Vec<&Symbol> = new
        .symbols
        .iter()
        .filter(keep)
        .filter(|s| !helper(new, s))
        .collect();
    let new_by_id: HashMap<&str, &Symbol> = new_syms.iter().map(|s| (s.id.as_str(), *s)).collect();
    let new_by_path: HashMap<&str, &Symbol> = new_syms
        .iter()
        .flat_map(|s| s.paths.iter().map(move |p| (p.as_str(), *s)))
        .collect();
    let old_by_path: HashMap<&str, &Symbol> = old_syms
        .iter()
        .flat_map(|s| s.paths.iter().map(move |p| (p.as_str(), *s)))
        .collect();

    let mut out = Vec::new();
    let mut removed: Vec<&Symbol> = Vec::new();
    let mut matched_new: BTreeSet<&str> = BTreeSet::new();
    for s in &old_syms {
        let counterpart = new_by_id
            .get(s.id.as_str())
            .or_else(|| new_by_path.get(s.primary_path()))
            .copied();
        match counterpart {
            Some(t) => {
                matched_new.insert(t.id.as_str());
                // Paths of the object that are gone: under another name it is a rename
                // (`operatorPrecedence`, an alias of `infixNotation`); the main path under the
                // same name elsewhere is a move; other re-exports dropped are not reported.
                let target = t.primary_path();
                for p in s
                    .paths
                    .iter()
                    .filter(|p| !new_by_path.contains_key(p.as_str()))
                {
                    let kind = if leaf(p) != leaf(target) {
                        ChangeKind::Renamed
                    } else if p == s.primary_path() {
                        ChangeKind::Moved
                    } else {
                        continue;
                    };
                    out.push(change(ctx, kind, s, Some(t), |c| {
                        c.symbol = p.clone();
                        c.aliases.retain(|a| a != p);
                        c.new_symbol = Some(target.to_string());
                    }));
                }
                compare(ctx, s, t, &mut out, &mut count);
            }
            None => {
                // A member reached only through classes that are gone is part of that removal.
                let owner_gone = s.owner.is_some()
                    && !s.paths.iter().any(|p| new_by_path.contains_key(parent(p)));
                if owner_gone {
                    count("member_of_removed_class");
                } else {
                    removed.push(s);
                }
            }
        }
    }
    let mut added: Vec<&Symbol> = Vec::new();
    for t in &new_syms {
        if matched_new.contains(t.id.as_str())
            || t.paths.iter().any(|p| old_by_path.contains_key(p.as_str()))
        {
            continue;
        }
        let owner_new =
            t.owner.is_some() && !t.paths.iter().any(|p| old_by_path.contains_key(parent(p)));
        if owner_new {
            count("member_of_added_class");
        } else {
            added.push(t);
        }
    }
    // Renames: a removal and an addition in one scope, similar names or named by a warning.
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, r) in removed.iter().enumerate() {
        for (j, a) in added.iter().enumerate() {
            let callable = |k: &str| !matches!(k, "constant" | "attribute" | "property");
            if callable(&r.kind) != callable(&a.kind) {
                continue;
            }
            let scopes_r: BTreeSet<&str> = r.paths.iter().map(|p| parent(p)).collect();
            if !a.paths.iter().any(|p| scopes_r.contains(parent(p))) {
                continue;
            }
            let a_leaf = leaf(a.primary_path());
            let named = r.warnings.iter().any(|w| w.message.contains(a_leaf));
            let sim = similarity(leaf(r.primary_path()), a_leaf);
            if named || sim >= 0.75 {
                pairs.push((if named { 2.0 } else { sim }, i, j));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
    let (mut used_r, mut used_a) = (BTreeSet::new(), BTreeSet::new());
    for (_, i, j) in pairs {
        if used_r.contains(&i) || used_a.contains(&j) {
            continue;
        }
        used_r.insert(i);
        used_a.insert(j);
        let (r, a) = (removed[i], added[j]);
        out.push(change(ctx, ChangeKind::Renamed, r, Some(a), |c| {
            c.new_symbol = Some(a.primary_path().to_string());
            c.evidence.warnings = r.warnings.clone();
        }));
    }
    for (i, r) in removed
        .iter()
        .enumerate()
        .filter(|(i, _)| !used_r.contains(i))
    {
        let _ = i;
        let kind = if r.owner.is_some() {
            ChangeKind::MemberRemoved
        } else {
            ChangeKind::Removed
        };
        out.push(change(ctx, kind, r, None, |c| {
            c.evidence.warnings = r.warnings.clone()
        }));
    }
    for (j, a) in added
        .iter()
        .enumerate()
        .filter(|(j, _)| !used_a.contains(j))
    {
        let _ = j;
        let kind = if a.owner.is_some() {
            ChangeKind::MemberAdded
        } else {
            ChangeKind::Added
        };
        out.push(change_new(ctx, kind, a));
    }
    out.sort_by(|x, y| (x.kind, &x.symbol, &x.param).cmp(&(y.kind, &y.symbol, &y.param)));
    out.dedup_by(|a, b| a.id == b.id);
    (out, filtered)
}

fn mangled() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^_[A-Za-z]\w*__\w+$").expect("static regex"))
}

/// Default reprs without object addresses (`<object at 0x7f…>` differs on every run).
fn stable_default(p: &Param) -> Option<String> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r" at 0x[0-9a-fA-F]+").expect("static regex"));
    p.default
        .as_deref()
        .map(|d| re.replace_all(d, "").into_owned())
}

/// Parameter, kind and deprecation changes of one symbol present in both versions.
fn compare(
    ctx: &DiffContext,
    s: &Symbol,
    t: &Symbol,
    out: &mut Vec<ApiChange>,
    count: &mut impl FnMut(&str),
) {
    if s.kind != t.kind {
        out.push(change(ctx, ChangeKind::KindChanged, s, Some(t), |_| {}));
    }
    let old_dep: BTreeSet<(&str, &str)> = s
        .warnings
        .iter()
        .map(|w| (w.category.as_str(), w.message.as_str()))
        .collect();
    let fresh: Vec<WarningSeen> = t
        .warnings
        .iter()
        .filter(|w| {
            is_deprecation(w) && !old_dep.contains(&(w.category.as_str(), w.message.as_str()))
        })
        .cloned()
        .collect();
    if !fresh.is_empty() {
        out.push(change(ctx, ChangeKind::Deprecated, s, Some(t), |c| {
            c.evidence.warnings = fresh
        }));
    }
    let (Some(op), Some(np)) = (&s.params, &t.params) else {
        return;
    };
    let clean = |ps: &[Param], count: &mut dyn FnMut(&str)| -> Vec<Param> {
        ps.iter()
            .filter(|p| {
                let m = mangled().is_match(&p.name);
                if m {
                    count("name_mangled_param");
                }
                !m && p.name != "self" && p.name != "cls"
            })
            .cloned()
            .collect()
    };
    let op = clean(op, count);
    let np = clean(np, count);
    // `(*args, **kwargs)` is a wrapper's signature (a decorator), not the API: nothing to compare.
    let opaque = |ps: &[Param]| !ps.is_empty() && ps.iter().all(|p| p.kind.starts_with("VAR_"));
    if opaque(&op) || opaque(&np) {
        count("opaque_signature");
        return;
    }
    let names = |ps: &[Param]| ps.iter().map(|p| p.name.clone()).collect::<BTreeSet<_>>();
    let (on, nn) = (names(&op), names(&np));
    let gone: Vec<&Param> = op.iter().filter(|p| !nn.contains(&p.name)).collect();
    let came: Vec<&Param> = np.iter().filter(|p| !on.contains(&p.name)).collect();
    let mut renamed = BTreeSet::new();
    for g in &gone {
        let gi = op.iter().position(|p| p.name == g.name);
        if let Some(c) = came
            .iter()
            .find(|c| np.iter().position(|p| p.name == c.name) == gi && c.kind == g.kind)
        {
            renamed.insert(c.name.clone());
            out.push(change(ctx, ChangeKind::ParamRenamed, s, Some(t), |x| {
                x.param = Some(g.name.clone());
                x.new_param = Some(c.name.clone());
            }));
            continue;
        }
        out.push(change(ctx, ChangeKind::ParamRemoved, s, Some(t), |x| {
            x.param = Some(g.name.clone())
        }));
    }
    for c in came.iter().filter(|c| !renamed.contains(&c.name)) {
        out.push(change(ctx, ChangeKind::ParamAdded, s, Some(t), |x| {
            x.param = Some(c.name.clone())
        }));
    }
    for p in &op {
        if let Some(q) = np.iter().find(|q| q.name == p.name) {
            if p.has_default != q.has_default || stable_default(p) != stable_default(q) {
                out.push(change(ctx, ChangeKind::DefaultChanged, s, Some(t), |x| {
                    x.param = Some(p.name.clone())
                }));
            }
        }
    }
}

/// A change about old symbol `s` (with its new counterpart `t`, if any).
fn change(
    ctx: &DiffContext,
    kind: ChangeKind,
    s: &Symbol,
    t: Option<&Symbol>,
    fill: impl FnOnce(&mut ApiChange),
) -> ApiChange {
    let symbol = s.primary_path().to_string();
    let mut c = ApiChange {
        id: String::new(),
        dist: ctx.dist.clone(),
        old_version: ctx.old_version.clone(),
        new_version: ctx.new_version.clone(),
        python: ctx.python.clone(),
        kind,
        aliases: s.paths.iter().filter(|p| **p != symbol).cloned().collect(),
        symbol,
        canonical: s.id.clone(),
        symbol_kind: t.map(|t| t.kind.clone()).unwrap_or_else(|| s.kind.clone()),
        new_symbol: None,
        param: None,
        new_param: None,
        old_signature: s.signature.clone(),
        new_signature: t.and_then(|t| t.signature.clone()),
        evidence: Evidence {
            doc_deprecated: t.is_some_and(|t| t.doc_deprecated && !s.doc_deprecated),
            ..Evidence::default()
        },
    };
    fill(&mut c);
    c.id = change_id(&c);
    c
}

/// A change about a symbol that exists only in the new version.
fn change_new(ctx: &DiffContext, kind: ChangeKind, t: &Symbol) -> ApiChange {
    let mut c = change(ctx, kind, t, None, |_| {});
    c.new_signature = t.signature.clone();
    c.old_signature = None;
    c.evidence.doc_deprecated = false;
    c.id = change_id(&c);
    c
}

/// `dist@old..new:kind:symbol[>new_symbol][:param[>new_param]]`.
pub fn change_id(c: &ApiChange) -> String {
    let mut id = format!(
        "{}@{}..{}:{}:{}",
        c.dist,
        c.old_version,
        c.new_version,
        c.kind.as_str(),
        c.symbol
    );
    if let Some(n) = &c.new_symbol {
        id.push('>');
        id.push_str(n);
    }
    if let Some(p) = &c.param {
        id.push(':');
        id.push_str(p);
        if let Some(n) = &c.new_param {
            id.push('>');
            id.push_str(n);
        }
    }
    id
}

/// What a change id names: enough for `verify`'s off-target check without `changes.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRef {
    /// Distribution.
    pub dist: String,
    /// Kind name (`removed`, `param_added`, …).
    pub kind: String,
    /// Old (or only) symbol path.
    pub symbol: String,
    /// New symbol path of a rename or move.
    pub new_symbol: Option<String>,
    /// Parameter (old name).
    pub param: Option<String>,
    /// New parameter name of a parameter rename.
    pub new_param: Option<String>,
}

impl ChangeRef {
    /// Parses `dist@old..new:kind:symbol[>new][:param[>new]]`; `None` if it is not one.
    pub fn parse(id: &str) -> Option<ChangeRef> {
        let (dist, rest) = id.split_once('@')?;
        let (_versions, rest) = rest.split_once(':')?;
        let mut parts = rest.splitn(3, ':');
        let kind = parts.next()?.to_string();
        let split = |s: &str| match s.split_once('>') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (s.to_string(), None),
        };
        let (symbol, new_symbol) = split(parts.next()?);
        let (param, new_param) = match parts.next() {
            Some(p) => {
                let (a, b) = split(p);
                (Some(a), b)
            }
            None => (None, None),
        };
        Some(ChangeRef {
            dist: dist.into(),
            kind,
            symbol,
            new_symbol,
            param,
            new_param,
        })
    }

    /// Identifiers old code must use (the old API) and new code must use (the new API).
    pub fn required_names(&self) -> (Vec<String>, Vec<String>) {
        let sym = leaf(&self.symbol).to_string();
        let new_sym = self.new_symbol.as_deref().map(|s| leaf(s).to_string());
        match (self.kind.as_str(), &self.param) {
            ("param_added", Some(p)) => (vec![], vec![p.clone()]),
            ("param_removed", Some(p)) => (vec![p.clone()], vec![]),
            ("param_renamed", Some(p)) => (
                vec![p.clone()],
                self.new_param.clone().into_iter().collect(),
            ),
            ("added" | "member_added", _) => (vec![], vec![sym]),
            ("renamed" | "moved", _) => (vec![sym.clone()], vec![new_sym.unwrap_or(sym)]),
            _ => (vec![sym], vec![]),
        }
    }
}
