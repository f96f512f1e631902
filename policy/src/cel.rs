//! CEL conditions (`when`): the variable schema, the helper functions, load-time checks and evaluation.
//!
//! Variables:
//!
//! | variable | fields |
//! |---|---|
//! | `request` | `action`, `method`, `path`, `repository`, `reference`, `tag`, `digest`, `mount_from` (strings, `""` when absent), `time` (timestamp) |
//! | `client` | `ip`, `peer_ip` (strings), `forwarded_for` (list of strings, raw and untrusted), `tls` { `version`, `cert` { `subject`, `sans` (list), `fingerprint` } } |
//! | `principal` | `name`, `groups` (list), `method` (`anonymous`, `basic`, `bearer`, `mtls`), `claims` (map, may be empty) |
//!
//! Functions: the CEL standard library (`size`, `contains`, `startsWith`, `endsWith`, `matches`, `in`,
//! `all`, `exists`, `map`, `filter`, timestamps...), `ip_in(ip, cidr)` and `glob(pattern, s)` (the repository
//! glob syntax). The strings extension is left out on purpose: `replace`, `split` and `join` can grow a
//! string exponentially within a few hundred bytes of expression.
//!
//! At load time every identifier and field path (also `x["f"]` and `x.?f`) is checked against that schema
//! (anything goes under `principal.claims`), every function must exist, literal `glob`, `ip_in` and
//! `matches` arguments must be valid, and the expression's cost is bounded: at most [`MAX_DEPTH`] levels
//! deep, no nested comprehension, and an estimated cost (each node, times 1,000 inside a comprehension or
//! for an `in` over a list) under [`MAX_COST`]. Lists that clients control are capped
//! (`client.forwarded_for` keeps its first [`MAX_FORWARDED`] entries), so no condition can stall the proxy.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock};

use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr, IdedExpr, LiteralValue};
use cel::common::types::CelDouble;
use cel::common::types::{
    CelBool, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, Program, Value};

use crate::principal::Principal;
use crate::request::Request;

/// Longest accepted condition, in bytes.
pub const MAX_LENGTH: usize = 4096;
/// Largest accepted estimated cost.
pub const MAX_COST: u64 = 100_000;
/// The list size the cost estimate assumes for each comprehension.
const LIST_SIZE: u64 = 1_000;

/// The shared environment: the standard library plus `ip_in` and `glob`.
pub(crate) fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        // The standard library only: the strings extension's replace/split/join can grow a string
        // exponentially in a short expression, which no estimate of the expression's cost bounds.
        let mut env = Env::stdlib();
        cel::add_overload!(env, fn ip_in: (CelString, CelString) -> Result<CelBool>, name = "ip_in")
            .expect("ip_in registers on the standard environment");
        cel::add_overload!(env, fn glob: (CelString, CelString) -> Result<CelBool>, name = "glob")
            .expect("glob registers on the standard environment");
        Arc::new(env)
    })
}

fn ip_in(ip: &CelString<'_>, cidr: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let addr: IpAddr = ip.inner().parse().map_err(|_| {
        ExecutionError::function_error("ip_in", format!("not an IP address: {:?}", ip.inner()))
    })?;
    let net = Cidr::parse(cidr.inner()).ok_or_else(|| {
        ExecutionError::function_error("ip_in", format!("not a CIDR (like 10.0.0.0/8): {:?}", cidr.inner()))
    })?;
    Ok(CelBool::from(net.contains(addr)))
}

fn glob(pattern: &CelString<'_>, s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    glob_cache::is_match(pattern.inner(), s.inner())
        .map(CelBool::from)
        .map_err(|e| ExecutionError::function_error("glob", e))
}

/// An address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `fd00::/8`, or a single address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { net: addr, prefix })
    }

    /// Is `ip` inside? An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(n)), 32, self.prefix)
                    == masked(u128::from(u32::from(a)), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u32, prefix: u8) -> u128 {
    let prefix = u32::from(prefix);
    if prefix == 0 { 0 } else { bits >> (width - prefix) }
}

/// Compiled `glob()` patterns, shared by every condition: those written as literals (compiled when a policy
/// loads, kept) and those computed at run time (bounded, forgotten when full).
mod glob_cache {
    use std::collections::HashMap;

    use super::RwLock;

    const MAX: usize = 1024;

    type Map = RwLock<HashMap<String, globset::GlobMatcher>>;

    fn pinned() -> &'static Map {
        static PINNED: std::sync::OnceLock<Map> = std::sync::OnceLock::new();
        PINNED.get_or_init(Default::default)
    }

    fn dynamic() -> &'static Map {
        static DYNAMIC: std::sync::OnceLock<Map> = std::sync::OnceLock::new();
        DYNAMIC.get_or_init(Default::default)
    }

    /// Keeps a literal pattern compiled for good.
    pub(super) fn pin(pattern: &str, matcher: globset::GlobMatcher) {
        if let Ok(mut map) = pinned().write() {
            map.entry(pattern.to_owned()).or_insert(matcher);
        }
    }

    pub(super) fn is_match(pattern: &str, s: &str) -> Result<bool, String> {
        for cache in [pinned(), dynamic()] {
            if let Ok(map) = cache.read()
                && let Some(m) = map.get(pattern)
            {
                return Ok(m.is_match(s));
            }
        }
        let matcher = crate::glob::compile(pattern).map_err(|e| e.to_string())?.compile_matcher();
        let hit = matcher.is_match(s);
        if let Ok(mut map) = dynamic().write() {
            if map.len() >= MAX {
                map.clear();
            }
            map.insert(pattern.to_owned(), matcher);
        }
        Ok(hit)
    }
}

/// Which variables a condition reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Uses {
    request: bool,
    client: bool,
    principal: bool,
    /// It reads something only known per request (anything but `principal`, `request.action` and
    /// `request.repository`).
    pub per_request: bool,
}

/// A compiled `when`.
#[derive(Debug)]
pub(crate) struct Condition {
    program: Program,
    uses: Uses,
}

/// A condition that does not compile, with its position inside the expression (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConditionError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl Condition {
    /// Compiles and checks an expression.
    pub(crate) fn compile(text: &str) -> Result<Condition, ConditionError> {
        if text.len() > MAX_LENGTH {
            return Err(ConditionError {
                line: 1,
                column: 1,
                message: format!("condition is longer than {MAX_LENGTH} bytes"),
            });
        }
        if let Some((offset, depth)) = bracket_depth(text).filter(|(_, d)| *d > MAX_BRACKETS) {
            let (line, column) = position(text, offset);
            return Err(ConditionError {
                line,
                column,
                message: format!("condition nests brackets {depth} deep (at most {MAX_BRACKETS})"),
            });
        }
        // CEL's parser recurses deeply (several times more in debug builds): parse on a thread with room
        // for it, so no policy text can overflow the caller's stack.
        let parsed = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("cel-compile".into())
                .stack_size(PARSE_STACK)
                .spawn_scoped(scope, || env().compile(text))
                .map(|handle| handle.join())
        });
        let parsed = match parsed {
            Ok(Ok(result)) => result,
            // No thread (resources exhausted) or a panic inside the parser: refuse the condition.
            _ => {
                return Err(ConditionError {
                    line: 1,
                    column: 1,
                    message: "the condition could not be parsed".into(),
                });
            }
        };
        let program = parsed.map_err(|errors| {
            let first = errors.errors.first();
            let (line, column) = first.map_or((1, 1), |e| (to_u32(e.pos.0), to_u32(e.pos.1) + 1));
            let msg = first.map_or_else(|| "syntax error".to_owned(), |e| e.msg.clone());
            let message = if msg.to_ascii_lowercase().starts_with("syntax error") {
                msg
            } else {
                format!("syntax error: {msg}")
            };
            ConditionError { line, column, message }
        })?;
        let mut walk =
            Walk { program: &program, text, scope: Vec::new(), depth: 0, cost: 0, uses: Uses::default() };
        walk.expr(program.expression(), 1, 1)?;
        if walk.cost > MAX_COST {
            return Err(ConditionError {
                line: 1,
                column: 1,
                message: format!(
                    "condition is too expensive (estimated cost {} > {MAX_COST}); simplify it or move work out of all()/exists()/map()/filter()",
                    walk.cost
                ),
            });
        }
        Ok(Condition { uses: walk.uses, program })
    }

    /// What it reads.
    pub(crate) fn uses(&self) -> Uses {
        self.uses
    }

    /// Evaluates to a bool; anything else (or an error) is an error.
    pub(crate) fn evaluate(&self, activation: &Activation<'_>) -> Result<bool, String> {
        let mut ctx = Context::with_env(env().clone());
        ctx.set_variable_resolver(activation);
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("condition evaluated to {:?}, not a bool", other.type_of())),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// 1-based line and column of a character offset.
fn position(text: &str, offset: usize) -> (u32, u32) {
    let (mut line, mut column) = (1u32, 1u32);
    for c in text.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

fn to_u32(v: isize) -> u32 {
    u32::try_from(v.max(1)).unwrap_or(1)
}

/// One field of the variable schema.
enum Field {
    Leaf,
    Object(&'static [(&'static str, Field)]),
    /// Any key, any depth (`principal.claims`).
    Free,
}

const CERT: &[(&str, Field)] =
    &[("subject", Field::Leaf), ("sans", Field::Leaf), ("fingerprint", Field::Leaf)];
const TLS: &[(&str, Field)] = &[("version", Field::Leaf), ("cert", Field::Object(CERT))];
const CLIENT: &[(&str, Field)] = &[
    ("ip", Field::Leaf),
    ("peer_ip", Field::Leaf),
    ("forwarded_for", Field::Leaf),
    ("tls", Field::Object(TLS)),
];
const REQUEST: &[(&str, Field)] = &[
    ("action", Field::Leaf),
    ("method", Field::Leaf),
    ("path", Field::Leaf),
    ("repository", Field::Leaf),
    ("reference", Field::Leaf),
    ("tag", Field::Leaf),
    ("digest", Field::Leaf),
    ("mount_from", Field::Leaf),
    ("time", Field::Leaf),
];
const PRINCIPAL: &[(&str, Field)] =
    &[("name", Field::Leaf), ("groups", Field::Leaf), ("method", Field::Leaf), ("claims", Field::Free)];
const ROOTS: &[(&str, Field)] = &[
    ("request", Field::Object(REQUEST)),
    ("client", Field::Object(CLIENT)),
    ("principal", Field::Object(PRINCIPAL)),
];

struct Walk<'p> {
    program: &'p Program,
    text: &'p str,
    scope: Vec<String>,
    depth: u32,
    cost: u64,
    uses: Uses,
}

/// Deepest accepted bracket nesting, checked before parsing.
pub const MAX_BRACKETS: usize = 16;
/// Stack for the parser's thread.
const PARSE_STACK: usize = 64 << 20;

/// The deepest `(`, `[` or `{` nesting outside string literals, and where it is first reached.
fn bracket_depth(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.chars().enumerate() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    at = i;
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (deepest > 0).then_some((at, deepest))
}

/// Deepest accepted expression tree (evaluation recurses once per level).
pub const MAX_DEPTH: u32 = 64;
/// Entries of `X-Forwarded-For` visible to conditions.
pub const MAX_FORWARDED: usize = 64;

/// CEL's operators, as the parser names them (`cel::common::ast::operators`).
const OPERATORS: &[&str] = &[
    "_?_:_",
    "_&&_",
    "_||_",
    "!_",
    "_-_",
    "_+_",
    "_*_",
    "_/_",
    "_%_",
    "_==_",
    "_!=_",
    "_>=_",
    "_<=_",
    "_>_",
    "_<_",
    "-_",
    "_[_]",
    "_[?_]",
    "_?._",
    "@not_strictly_false",
    "@in",
];

/// Type names, usable as identifiers (`type(x) == string`).
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "timestamp",
    "duration",
    "dyn",
];

/// `a.b`, `a["b"]`, `a[?"b"]`, `a.?b` chains with literal keys: the base expression and the fields.
fn field_path(e: &IdedExpr) -> (&IdedExpr, Vec<&str>) {
    let mut fields = Vec::new();
    let mut cur = e;
    loop {
        match &cur.expr {
            Expr::Select(sel) => {
                fields.push(sel.field.as_str());
                cur = &sel.operand;
            }
            Expr::Call(c) if is_index(&c.func_name) && c.target.is_none() && c.args.len() == 2 => {
                let Some(key) = literal_string(&c.args[1]) else { break };
                fields.push(key);
                cur = &c.args[0];
            }
            _ => break,
        }
    }
    fields.reverse();
    (cur, fields)
}

fn is_index(name: &str) -> bool {
    matches!(name, "_[_]" | "_[?_]" | "_?._")
}

fn literal_string(e: &IdedExpr) -> Option<&str> {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.inner()),
        _ => None,
    }
}

impl Walk<'_> {
    fn error(&self, id: u64, message: String) -> ConditionError {
        let start = self.program.source_info().offset_for(id).map_or(0, |(start, _)| start as usize);
        let (line, column) = position(self.text, start);
        ConditionError { line, column, message }
    }

    fn expr(&mut self, e: &IdedExpr, weight: u64, level: u32) -> Result<(), ConditionError> {
        if level > MAX_DEPTH {
            return Err(self.error(e.id, format!("condition is nested more than {MAX_DEPTH} levels deep")));
        }
        self.cost = self.cost.saturating_add(weight);
        let next = level + 1;
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => Ok(()),
            Expr::Ident(name) => self.ident(e.id, name, &[]),
            Expr::Select(_) => self.path(e, weight, next),
            Expr::Call(call) if is_index(&call.func_name) && !field_path(e).1.is_empty() => {
                self.path(e, weight, next)
            }
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                if !OPERATORS.contains(&name) && !is_function(name) {
                    return Err(self.error(e.id, format!("unknown function `{name}`")));
                }
                if matches!(name, "_[?_]" | "_?._")
                    && let Some(base) = call.args.first()
                    && !self.is_free(base)
                {
                    // A computed optional key on request/client/principal could hide a typo forever.
                    return Err(
                        self.error(e.id, "an optional field access needs a literal field name".into())
                    );
                }
                self.literal_arguments(e.id, name, call.target.as_deref(), &call.args)?;
                // `x in list` walks the list.
                if name == "@in" {
                    self.cost = self.cost.saturating_add(weight.saturating_mul(LIST_SIZE));
                }
                if let Some(t) = &call.target {
                    self.expr(t, weight, next)?;
                }
                call.args.iter().try_for_each(|a| self.expr(a, weight, next))
            }
            Expr::List(list) => list.elements.iter().try_for_each(|x| self.expr(x, weight, next)),
            Expr::Map(map) => self.entries(&map.entries, weight, next),
            Expr::Struct(s) => self.entries(&s.entries, weight, next),
            Expr::Comprehension(c) => {
                if self.depth >= 1 {
                    return Err(self.error(
                        e.id,
                        "nested comprehensions (all/exists/exists_one/map/filter inside another) are not allowed: \
                         their cost grows with the square of the input"
                            .into(),
                    ));
                }
                self.expr(&c.iter_range, weight, next)?;
                self.expr(&c.accu_init, weight, next)?;
                self.depth += 1;
                let pushed = [Some(&c.iter_var), c.iter_var2.as_ref(), Some(&c.accu_var)];
                let n = self.scope.len();
                self.scope.extend(pushed.into_iter().flatten().cloned());
                let inner = weight.saturating_mul(LIST_SIZE);
                let r = self
                    .expr(&c.loop_cond, inner, next)
                    .and_then(|()| self.expr(&c.loop_step, inner, next))
                    .and_then(|()| self.expr(&c.result, weight, next));
                self.scope.truncate(n);
                self.depth -= 1;
                r
            }
        }
    }

    /// Is `e` inside `principal.claims` (where any key may exist) or not a variable at all?
    fn is_free(&self, e: &IdedExpr) -> bool {
        let (base, fields) = field_path(e);
        let Expr::Ident(name) = &base.expr else { return true };
        if self.scope.iter().any(|v| v == name) {
            return true;
        }
        let Some((_, root)) = ROOTS.iter().find(|(n, _)| n == name) else { return true };
        let mut field = root;
        for f in fields {
            match field {
                Field::Free => return true,
                Field::Leaf => return false,
                Field::Object(children) => match children.iter().find(|(n, _)| *n == f) {
                    Some((_, child)) => field = child,
                    None => return false,
                },
            }
        }
        matches!(field, Field::Free)
    }

    /// A field path (`request.tag`, `principal.claims["k"]`): checked against the schema when it starts at a
    /// variable, else its base is walked.
    fn path(&mut self, e: &IdedExpr, weight: u64, level: u32) -> Result<(), ConditionError> {
        let (base, fields) = field_path(e);
        match &base.expr {
            Expr::Ident(name) => self.ident(base.id, name, &fields),
            _ => self.expr(base, weight, level),
        }
    }

    /// Arguments written as literals are checked now rather than failing on every request.
    fn literal_arguments(
        &self,
        id: u64,
        name: &str,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
    ) -> Result<(), ConditionError> {
        match (name, target) {
            ("glob", None) => {
                if let Some(pattern) = args.first().and_then(literal_string) {
                    let m = crate::glob::compile(pattern)
                        .map_err(|e| self.error(id, format!("bad glob {pattern:?}: {}", e.kind())))?
                        .compile_matcher();
                    glob_cache::pin(pattern, m);
                }
            }
            ("ip_in", None) => {
                if let Some(cidr) = args.get(1).and_then(literal_string)
                    && Cidr::parse(cidr).is_none()
                {
                    return Err(self.error(id, format!("not a CIDR (like 10.0.0.0/8): {cidr:?}")));
                }
            }
            ("matches", _) => {
                let pattern = if target.is_some() { args.first() } else { args.get(1) };
                if let Some(p) = pattern.and_then(literal_string)
                    && let Err(e) = regex::Regex::new(p)
                {
                    return Err(self.error(id, format!("bad regular expression {p:?}: {e}")));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn entries(&mut self, entries: &[IdedEntryExpr], weight: u64, level: u32) -> Result<(), ConditionError> {
        entries.iter().try_for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => {
                self.expr(&m.key, weight, level)?;
                self.expr(&m.value, weight, level)
            }
            EntryExpr::StructField(f) => self.expr(&f.value, weight, level),
        })
    }

    /// An identifier, possibly followed by field selections.
    fn ident(&mut self, id: u64, name: &str, fields: &[&str]) -> Result<(), ConditionError> {
        if self.scope.iter().any(|v| v == name) || (fields.is_empty() && TYPE_NAMES.contains(&name)) {
            return Ok(());
        }
        let Some((_, root)) = ROOTS.iter().find(|(n, _)| *n == name) else {
            return Err(
                self.error(id, format!("unknown variable `{name}` (use request, client or principal)"))
            );
        };
        match name {
            "request" => {
                self.uses.request = true;
                if !matches!(fields.first(), Some(&"action" | &"repository")) {
                    self.uses.per_request = true;
                }
            }
            "client" => {
                self.uses.client = true;
                self.uses.per_request = true;
            }
            _ => self.uses.principal = true,
        }
        let mut field = root;
        let mut path = name.to_owned();
        for f in fields {
            match field {
                Field::Free => return Ok(()),
                Field::Leaf => return Err(self.error(id, format!("`{path}` has no field `{f}`"))),
                Field::Object(children) => {
                    let Some((_, child)) = children.iter().find(|(n, _)| n == f) else {
                        let known: Vec<&str> = children.iter().map(|(n, _)| *n).collect();
                        return Err(self
                            .error(id, format!("unknown field `{path}.{f}` (known: {})", known.join(", "))));
                    };
                    path.push('.');
                    path.push_str(f);
                    field = child;
                }
            }
        }
        Ok(())
    }
}

/// Does the environment declare `name`? (A context refuses a function that the environment already
/// declares, which is the one public way to ask.)
fn is_function(name: &str) -> bool {
    let mut ctx = Context::with_env(env().clone());
    ctx.add_function(name, || false).is_err()
}

/// The variables of one evaluation, built on first use and shared by every condition of one decision.
pub(crate) struct Activation<'a> {
    principal: &'a Principal,
    request: &'a Request<'a>,
    request_val: OnceLock<Box<dyn Val + 'a>>,
    client_val: OnceLock<Box<dyn Val + 'a>>,
}

impl<'a> Activation<'a> {
    pub(crate) fn new(principal: &'a Principal, request: &'a Request<'a>) -> Activation<'a> {
        Activation { principal, request, request_val: OnceLock::new(), client_val: OnceLock::new() }
    }
}

impl VariableResolver for Activation<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let v: &'b (dyn Val + 'b) = match variable {
            "principal" => self.principal.cel_value(),
            "request" => self.request_val.get_or_init(|| request_value(self.request)).as_ref(),
            "client" => self.client_val.get_or_init(|| client_value(self.request)).as_ref(),
            _ => return None,
        };
        Some(CowVal::Borrowed(v))
    }
}

fn map<'v>(entries: impl IntoIterator<Item = (&'static str, Box<dyn Val + 'v>)>) -> Box<dyn Val + 'v> {
    let map: std::collections::HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> =
        entries.into_iter().map(|(k, v)| (CelMapKey::String(CelString::from(k)), v)).collect();
    Box::new(CelMap::from(map))
}

fn text<'v>(s: &'v str) -> Box<dyn Val + 'v> {
    Box::new(CelString::from(s))
}

fn request_value<'a>(r: &'a Request<'a>) -> Box<dyn Val + 'a> {
    // A time chrono cannot represent becomes null: conditions reading it then fail (and deny).
    let time: Box<dyn Val + 'a> = r
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| chrono::DateTime::from_timestamp(i64::try_from(d.as_secs()).ok()?, d.subsec_nanos()))
        .map_or(Box::new(CelNull), |t| Box::new(CelTimestamp::from(t.fixed_offset())));
    map([
        ("action", text(r.action.as_str())),
        ("method", text(r.method)),
        ("path", text(r.path)),
        ("repository", text(r.repository)),
        ("reference", text(r.reference.unwrap_or(""))),
        ("tag", text(r.tag().unwrap_or(""))),
        ("digest", text(r.digest().unwrap_or(""))),
        ("mount_from", text(r.mount_from.unwrap_or(""))),
        ("time", time),
    ])
}

fn client_value<'a>(r: &'a Request<'a>) -> Box<dyn Val + 'a> {
    let c = &r.client;
    let ip = |ip: Option<IpAddr>| -> Box<dyn Val + 'a> {
        Box::new(CelString::from(ip.map(|i| i.to_string()).unwrap_or_default()))
    };
    let forwarded: Vec<Box<dyn Val + 'a>> = c
        .forwarded_for
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .take(MAX_FORWARDED)
        .map(text)
        .collect();
    let tls = c.tls.unwrap_or_default();
    let cert = tls.cert.unwrap_or_default();
    let sans: Vec<Box<dyn Val + 'a>> = cert.sans.iter().map(|s| text(s.as_str())).collect();
    map([
        ("ip", ip(c.ip)),
        ("peer_ip", ip(c.peer_ip)),
        ("forwarded_for", Box::new(CelList::from(forwarded))),
        (
            "tls",
            map([
                ("version", text(tls.version)),
                (
                    "cert",
                    map([
                        ("subject", text(cert.subject)),
                        ("sans", Box::new(CelList::from(sans))),
                        ("fingerprint", text(cert.fingerprint)),
                    ]),
                ),
            ]),
        ),
    ])
}

/// The `principal` variable, built once per principal.
pub(crate) fn principal_value(p: &Principal) -> Box<dyn Val> {
    let groups: Vec<Box<dyn Val>> =
        p.groups().iter().map(|g| Box::new(CelString::from(g.clone())) as Box<dyn Val>).collect();
    let claims: std::collections::HashMap<CelMapKey<'static>, Box<dyn Val>> = p
        .claims()
        .iter()
        .map(|(k, v)| (CelMapKey::String(CelString::from(k.clone())), json_value(v)))
        .collect();
    map([
        ("name", Box::new(CelString::from(p.name().to_owned())) as Box<dyn Val>),
        ("groups", Box::new(CelList::from(groups))),
        ("method", text(p.method().as_str())),
        ("claims", Box::new(CelMap::from(claims))),
    ])
}

fn json_value(v: &serde_json::Value) -> Box<dyn Val> {
    match v {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Box::new(CelInt::from(i)),
            (None, Some(u), _) => Box::new(CelUInt::from(u)),
            (_, _, Some(f)) => Box::new(CelDouble::from(f)),
            _ => Box::new(CelNull),
        },
        serde_json::Value::String(s) => Box::new(CelString::from(s.clone())),
        serde_json::Value::Array(a) => Box::new(CelList::from(a.iter().map(json_value).collect::<Vec<_>>())),
        serde_json::Value::Object(o) => {
            let m: std::collections::HashMap<CelMapKey<'static>, Box<dyn Val>> = o
                .iter()
                .map(|(k, v)| (CelMapKey::String(CelString::from(k.clone())), json_value(v)))
                .collect();
            Box::new(CelMap::from(m))
        }
    }
}
