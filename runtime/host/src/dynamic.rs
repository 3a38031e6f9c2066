//! Calling any export of any component, with arguments typed from the command line.
//!
//! This is how an untrusted adapter is evaluated before anyone trusts it: every exported
//! function is reachable by name, arguments are parsed as WAVE values (the WebAssembly Value
//! Encoding `wasmtime run --invoke` uses: `42`, `"text"`, `[1, 2]`, `{id: 7}`, `some(3)`)
//! against the function's parameter types, and the results come back as WAVE or JSON.

use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::wasm_wave;
use wasmtime::component::{Type, Val};

use crate::call::{Output, Sandboxed, json_size};
use crate::engine::{LoadedComponent, Runtime};
use crate::sandbox::{CallOutcome, FailedCall, Policy};

/// One exported function with its signature.
#[derive(Debug, Clone)]
pub struct ExportedFunc {
    /// The exporting interface (`operator:core/subject@0.1.0`), or `None` for a world-level export.
    pub interface: Option<String>,
    pub name: String,
    pub params: Vec<(String, Type)>,
    pub results: Vec<Type>,
}

impl ExportedFunc {
    /// `interface#name`, or `name` for a world-level export.
    pub fn qualified(&self) -> String {
        match &self.interface {
            Some(i) => format!("{i}#{}", self.name),
            None => self.name.clone(),
        }
    }

    /// `name(param: type, ...) -> result`, with types written in WIT.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|(n, t)| format!("{n}: {}", type_name(t))).collect();
        let mut s = format!("{}({})", self.qualified(), params.join(", "));
        if let Some(r) = self.results.first() {
            s.push_str(&format!(" -> {}", type_name(r)));
        }
        s
    }
}

/// A function name or argument list that does not fit the component (a usage error).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ArgumentError {
    pub message: String,
}

fn arg_error(message: impl Into<String>) -> ArgumentError {
    ArgumentError { message: message.into() }
}

/// Lists every exported function, world-level ones first.
pub fn exported_functions(runtime: &Runtime, component: &LoadedComponent) -> Vec<ExportedFunc> {
    let ty = component.component.component_type();
    let mut out = Vec::new();
    for (name, item) in ty.exports(&runtime.engine) {
        match item.ty {
            ComponentItem::ComponentFunc(f) => out.push(func(None, name, &f)),
            ComponentItem::ComponentInstance(inst) => {
                for (fname, fitem) in inst.exports(&runtime.engine) {
                    if let ComponentItem::ComponentFunc(f) = fitem.ty {
                        out.push(func(Some(name), fname, &f));
                    }
                }
            }
            _ => {}
        }
    }
    out.sort_by_key(|f| (f.interface.is_some(), f.qualified()));
    out
}

fn func(interface: Option<&str>, name: &str, f: &ComponentFunc) -> ExportedFunc {
    ExportedFunc {
        interface: interface.map(str::to_string),
        name: name.to_string(),
        params: f.params().map(|(n, t)| (n.to_string(), t)).collect(),
        results: f.results().collect(),
    }
}

/// Finds `query` among the exports: `name` when unique, or `interface#name`, where the
/// interface may be written in full, without its version, or by its last segment
/// (`operator:core/subject@0.1.0`, `operator:core/subject`, `subject`).
pub fn find_function<'a>(funcs: &'a [ExportedFunc], query: &str) -> Result<&'a ExportedFunc, ArgumentError> {
    let (iface, name) = match query.rsplit_once('#') {
        Some((i, n)) => (Some(i), n),
        None => (None, query),
    };
    let matches: Vec<&ExportedFunc> = funcs
        .iter()
        .filter(|f| f.name == name)
        .filter(|f| match (iface, &f.interface) {
            (None, _) => true,
            (Some(q), Some(i)) => interface_matches(i, q),
            (Some(_), None) => false,
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(arg_error(format!(
            "the component exports no function `{query}`; it exports:\n{}",
            funcs.iter().map(|f| format!("  {}", f.signature())).collect::<Vec<_>>().join("\n")
        ))),
        many => Err(arg_error(format!(
            "`{query}` is ambiguous; name one of: {}",
            many.iter().map(|f| f.qualified()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn interface_matches(full: &str, query: &str) -> bool {
    let unversioned = full.split('@').next().unwrap_or(full);
    let short = unversioned.rsplit('/').next().unwrap_or(unversioned);
    query == full || query == unversioned || query == short
}

/// Parses command-line arguments as values of the function's parameter types. A string
/// parameter also accepts bare text (no quotes needed).
pub fn parse_args(func: &ExportedFunc, args: &[String]) -> Result<Vec<Val>, ArgumentError> {
    if args.len() != func.params.len() {
        return Err(arg_error(format!(
            "`{}` takes {} argument(s), {} given; signature: {}",
            func.qualified(),
            func.params.len(),
            args.len(),
            func.signature()
        )));
    }
    func.params
        .iter()
        .zip(args)
        .map(|((name, ty), arg)| {
            if matches!(ty, Type::String) && !arg.trim_start().starts_with('"') {
                return Ok(Val::String(arg.clone()));
            }
            wasm_wave::from_str::<Val>(ty, arg)
                .map_err(|e| arg_error(format!("argument `{name}` = {arg:?} is not a valid {}: {e}", type_name(ty))))
        })
        .collect()
}

/// The results of a dynamic call.
#[derive(Debug, Clone, PartialEq)]
pub struct Values(pub Vec<Val>);

/// Measured as `--output json` prints the results, streamed: no second copy of the value.
impl Output for Values {
    fn output_size(&self) -> u64 {
        self.0.iter().map(|v| json_size(&Json(v))).sum()
    }
}

/// A value serialized as [`to_json`] describes, without building a `serde_json::Value`.
struct Json<'a>(&'a Val);

impl serde::Serialize for Json<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let seq = |s: S, items: &[Val]| {
            let mut seq = s.serialize_seq(Some(items.len()))?;
            for item in items {
                seq.serialize_element(&Json(item))?;
            }
            seq.end()
        };
        let one = |s: S, key: &str, value: Option<&Val>| {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(key, &value.map(Json))?;
            map.end()
        };
        match self.0 {
            Val::Bool(b) => s.serialize_bool(*b),
            Val::S8(n) => s.serialize_i8(*n),
            Val::U8(n) => s.serialize_u8(*n),
            Val::S16(n) => s.serialize_i16(*n),
            Val::U16(n) => s.serialize_u16(*n),
            Val::S32(n) => s.serialize_i32(*n),
            Val::U32(n) => s.serialize_u32(*n),
            Val::S64(n) => s.serialize_i64(*n),
            Val::U64(n) => s.serialize_u64(*n),
            Val::Float32(f) => float(f64::from(*f)).serialize(s),
            Val::Float64(f) => float(*f).serialize(s),
            Val::Char(c) => s.serialize_char(*c),
            Val::String(text) => s.serialize_str(text),
            Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => seq(s, items),
            Val::Map(pairs) => {
                let mut seq = s.serialize_seq(Some(pairs.len()))?;
                for (k, v) in pairs {
                    seq.serialize_element(&(Json(k), Json(v)))?;
                }
                seq.end()
            }
            Val::Record(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(&k.replace('-', "_"), &Json(v))?;
                }
                map.end()
            }
            Val::Variant(case, Some(payload)) => one(s, &case.replace('-', "_"), Some(payload)),
            Val::Variant(case, None) | Val::Enum(case) => s.serialize_str(&case.replace('-', "_")),
            Val::Option(o) => o.as_deref().map(Json).serialize(s),
            Val::Result(Ok(v)) => one(s, "ok", v.as_deref()),
            Val::Result(Err(e)) => one(s, "err", e.as_deref()),
            Val::Flags(names) => names.serialize(s),
            Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => s.serialize_str("<handle>"),
        }
    }
}

/// Calls `func` with `args` on a fresh instance.
pub async fn call(
    runtime: &Runtime,
    component: &LoadedComponent,
    policy: &Policy,
    func: &ExportedFunc,
    args: Vec<Val>,
) -> Result<CallOutcome<Values>, FailedCall> {
    let interface = func.interface.clone();
    let name = func.name.clone();
    let n_results = func.results.len();
    let client = Sandboxed::untyped(runtime, component, policy.clone());
    client
        .call(move |instance, store| {
            Box::pin(async move {
                let parent = match &interface {
                    Some(i) => Some(
                        instance
                            .get_export_index(&mut *store, None, i)
                            .ok_or_else(|| wasmtime::format_err!("export `{i}` vanished"))?,
                    ),
                    None => None,
                };
                let idx = instance
                    .get_export_index(&mut *store, parent.as_ref(), &name)
                    .ok_or_else(|| wasmtime::format_err!("export `{name}` vanished"))?;
                let f = instance
                    .get_func(&mut *store, idx)
                    .ok_or_else(|| wasmtime::format_err!("`{name}` is not a function"))?;
                let mut results = vec![Val::Bool(false); n_results];
                f.call_async(&mut *store, &args, &mut results).await?;
                Ok(Values(results))
            })
        })
        .await
}

/// A value in WAVE text form.
pub fn to_wave(v: &Val) -> String {
    wasm_wave::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
}

/// A value as JSON: records as objects with snake_case keys, variants as
/// `{"case": payload}` (or the bare case name without payload), `result` as `{"ok": ...}` /
/// `{"err": ...}`, options as the value or null.
pub fn to_json(v: &Val) -> serde_json::Value {
    serde_json::to_value(Json(v)).unwrap_or(serde_json::Value::Null)
}

fn float(f: f64) -> serde_json::Value {
    serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or_else(|| serde_json::json!(f.to_string()))
}

/// True when a returned value is the `err` case of a `result`: the call worked but the
/// operation failed (the CLI exits 1).
pub fn is_error(v: &Val) -> bool {
    matches!(v, Val::Result(Err(_)))
}

/// A type written in WIT syntax (records and variants by their shape, since names are not
/// kept at runtime).
pub fn type_name(t: &Type) -> String {
    match t {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", type_name(&l.ty())),
        Type::Option(o) => format!("option<{}>", type_name(&o.ty())),
        Type::Result(r) => {
            let ok = r.ok().map(|t| type_name(&t)).unwrap_or_else(|| "_".into());
            match r.err() {
                Some(e) => format!("result<{ok}, {}>", type_name(&e)),
                None => format!("result<{ok}>"),
            }
        }
        Type::Tuple(t) => format!("tuple<{}>", t.types().map(|t| type_name(&t)).collect::<Vec<_>>().join(", ")),
        Type::Record(r) => format!(
            "record {{ {} }}",
            r.fields().map(|f| format!("{}: {}", f.name, type_name(&f.ty))).collect::<Vec<_>>().join(", ")
        ),
        Type::Variant(v) => format!(
            "variant {{ {} }}",
            v.cases()
                .map(|c| match c.ty {
                    Some(t) => format!("{}({})", c.name, type_name(&t)),
                    None => c.name.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(interface: Option<&str>, name: &str) -> ExportedFunc {
        ExportedFunc { interface: interface.map(Into::into), name: name.into(), params: vec![], results: vec![] }
    }

    #[test]
    fn functions_are_found_by_bare_or_qualified_name() {
        let funcs = vec![
            f(None, "echo"),
            f(Some("operator:core/subject@0.1.0"), "describe"),
            f(Some("other:pkg/subject@1.0.0"), "describe"),
        ];
        assert_eq!(find_function(&funcs, "echo").expect("unique").name, "echo");
        let e = find_function(&funcs, "describe").expect_err("ambiguous").to_string();
        assert!(e.contains("ambiguous"), "{e}");
        for q in ["operator:core/subject@0.1.0#describe", "operator:core/subject#describe"] {
            assert_eq!(
                find_function(&funcs, q).expect("found").interface.as_deref(),
                Some("operator:core/subject@0.1.0")
            );
        }
        let e = find_function(&funcs, "nope").expect_err("missing").to_string();
        assert!(e.contains("exports no function `nope`") && e.contains("echo"), "{e}");
    }

    #[test]
    fn arguments_are_parsed_against_parameter_types() {
        let mut func = f(None, "add");
        func.params = vec![("a".into(), Type::U32), ("b".into(), Type::String)];
        let vals = parse_args(&func, &["7".into(), "bare text".into()]).expect("parsed");
        assert_eq!(vals, vec![Val::U32(7), Val::String("bare text".into())]);
        let vals = parse_args(&func, &["7".into(), "\"quoted\"".into()]).expect("parsed");
        assert_eq!(vals[1], Val::String("quoted".into()));
        let e = parse_args(&func, &["x".into(), "y".into()]).expect_err("not a u32").to_string();
        assert!(e.contains("argument `a`") && e.contains("u32"), "{e}");
        let e = parse_args(&func, &["1".into()]).expect_err("arity").to_string();
        assert!(e.contains("takes 2 argument(s), 1 given"), "{e}");
    }

    #[test]
    fn values_render_as_snake_case_json() {
        let v = Val::Result(Ok(Some(Box::new(Val::Record(vec![
            ("leader-store-id".into(), Val::Option(Some(Box::new(Val::U64(u64::MAX))))),
            ("state".into(), Val::Enum("up".into())),
        ])))));
        assert_eq!(to_json(&v), serde_json::json!({"ok": {"leader_store_id": 18446744073709551615u64, "state": "up"}}));
        let e = Val::Result(Err(Some(Box::new(Val::Variant(
            "bad-response".into(),
            Some(Box::new(Val::String("x".into()))),
        )))));
        assert_eq!(to_json(&e), serde_json::json!({"err": {"bad_response": "x"}}));
        assert!(is_error(&e));
    }
}
