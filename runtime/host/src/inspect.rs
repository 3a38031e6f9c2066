//! What a component asks for and offers, read from its embedded WIT without running it.
//!
//! For each import the report says what this host actually gives behind it (`wasi:filesystem`:
//! no directories; `operator:core/http`: granted endpoints only; an import the host lacks: not
//! provided), so a user sees what an untrusted component could do before running it.

use serde::Serialize;
use wit_parser::decoding::{DecodedWasm, decode};
use wit_parser::{Function, Resolve, Type, TypeDefKind, WorldItem, WorldKey};

use crate::error::CallError;

/// The decoded world of a component.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The world's name as the component records it.
    pub world: String,
    /// The operator contract it implements, if any (`subject-adapter`, `deployment-driver`,
    /// `policy-component`).
    pub contract: Option<String>,
    pub imports: Vec<WorldEntry>,
    pub exports: Vec<WorldEntry>,
}

/// One import or export: an interface and its functions, or a bare function.
#[derive(Debug, Clone, Serialize)]
pub struct WorldEntry {
    pub name: String,
    /// Function signatures in WIT syntax.
    pub functions: Vec<String>,
    /// For imports: what this host provides behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Decodes a component's world.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, CallError> {
    let decoded =
        decode(bytes).map_err(|e| CallError::InvalidComponent { detail: format!("cannot decode its WIT: {e:#}") })?;
    let DecodedWasm::Component(resolve, world_id) = decoded else {
        return Err(CallError::InvalidComponent { detail: "this is a WIT package, not a component".into() });
    };
    let world = &resolve.worlds[world_id];
    let entries = |items: &wit_parser::IndexMap<WorldKey, WorldItem>, imports: bool| -> Vec<WorldEntry> {
        items
            .iter()
            .filter_map(|(key, item)| {
                let name = resolve.name_world_key(key);
                let functions = match item {
                    WorldItem::Interface { id, .. } => {
                        resolve.interfaces[*id].functions.values().map(|f| signature(&resolve, f)).collect()
                    }
                    WorldItem::Function(f) => vec![signature(&resolve, f)],
                    WorldItem::Type { .. } => return None,
                };
                let host = imports.then(|| host_provision(&name).to_string());
                Some(WorldEntry { name, functions, host })
            })
            .collect()
    };
    let imports = entries(&world.imports, true);
    let exports = entries(&world.exports, false);
    let contract = exports.iter().find_map(|e| {
        let base = e.name.split('@').next().unwrap_or(&e.name);
        match base {
            "operator:core/subject" => Some("subject-adapter".to_string()),
            "operator:core/deployment-target" => Some("deployment-driver".to_string()),
            "operator:policy/policy" => Some("policy-component".to_string()),
            _ => None,
        }
    });
    Ok(Inspection { world: world.name.clone(), contract, imports, exports })
}

/// What this host gives a component behind an import.
pub fn host_provision(import: &str) -> &'static str {
    let base = import.split('@').next().unwrap_or(import);
    match base {
        "operator:core/http" => "granted endpoints only (see grants)",
        "operator:core/log" => "messages shown by the CLI (-v for info and below), capped",
        "operator:core/progress" => "progress shown by the CLI",
        "operator:core/docker" => "denied: Docker is granted only to deployment drivers run by `operator deploy`",
        "operator:core/sandbox" | "operator:core/types" => "types only",
        "wasi:cli/environment" => "empty: no environment variables, no arguments",
        "wasi:cli/stdout" | "wasi:cli/stderr" => "captured and capped; shown on failure or with -v",
        "wasi:cli/stdin" => "empty",
        "wasi:cli/exit" => "ends the call as a trap",
        b if b.starts_with("wasi:cli/terminal") => "not a terminal",
        b if b.starts_with("wasi:filesystem/") => "no directories: every file access fails",
        b if b.starts_with("wasi:sockets/") => "denied: no sockets and no name lookup",
        b if b.starts_with("wasi:clocks/") => "provided (waiting on a clock counts as host time)",
        b if b.starts_with("wasi:random/") => "provided",
        b if b.starts_with("wasi:io/") => "provided (streams and polling for the above)",
        _ => "NOT PROVIDED: calling it fails with `denied`",
    }
}

fn signature(resolve: &Resolve, f: &Function) -> String {
    let params: Vec<String> = f.params.iter().map(|p| format!("{}: {}", p.name, type_name(resolve, &p.ty))).collect();
    let mut s = format!("{}({})", f.item_name(), params.join(", "));
    if let Some(r) = &f.result {
        s.push_str(&format!(" -> {}", type_name(resolve, r)));
    }
    s
}

/// A type in WIT syntax, by name when it has one.
fn type_name(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "s8".into(),
        Type::S16 => "s16".into(),
        Type::S32 => "s32".into(),
        Type::S64 => "s64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
        Type::Id(id) => {
            let def = &resolve.types[*id];
            if let Some(name) = &def.name {
                return name.clone();
            }
            let t = |t: &Type| type_name(resolve, t);
            let opt = |t: &Option<Type>| t.as_ref().map(|t| type_name(resolve, t)).unwrap_or_else(|| "_".into());
            match &def.kind {
                TypeDefKind::List(e) => format!("list<{}>", t(e)),
                TypeDefKind::Option(e) => format!("option<{}>", t(e)),
                TypeDefKind::Result(r) => match &r.err {
                    Some(e) => format!("result<{}, {}>", opt(&r.ok), t(e)),
                    None if r.ok.is_some() => format!("result<{}>", opt(&r.ok)),
                    None => "result".into(),
                },
                TypeDefKind::Tuple(tu) => format!("tuple<{}>", tu.types.iter().map(t).collect::<Vec<_>>().join(", ")),
                TypeDefKind::Map(k, v) => format!("map<{}, {}>", t(k), t(v)),
                TypeDefKind::FixedLengthList(e, n) => format!("list<{}, {n}>", t(e)),
                TypeDefKind::Handle(wit_parser::Handle::Own(r)) => type_name(resolve, &Type::Id(*r)),
                TypeDefKind::Handle(wit_parser::Handle::Borrow(r)) => {
                    format!("borrow<{}>", type_name(resolve, &Type::Id(*r)))
                }
                TypeDefKind::Future(e) => format!("future<{}>", opt(e)),
                TypeDefKind::Stream(e) => format!("stream<{}>", opt(e)),
                TypeDefKind::Type(inner) => t(inner),
                other => other.as_str().to_string(),
            }
        }
    }
}
