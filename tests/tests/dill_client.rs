//! The `dill` format, wire-compatible with the original Python clients: payloads are produced
//! and results decoded by real Python with dill, exactly as those clients do it.

use faas_tests::{
    decode_pickle_b64, dill_repr, python_json, run_python, Mode, Stack, TestDir, DILL_PRELUDE,
};
use serde_json::Value;

faas_tests::per_mode!(
    by_value_function_runs_and_returns_a_pickle,
    closures_lambdas_and_structured_values_round_trip,
    exceptions_come_back_pickled_and_are_not_retried,
    by_reference_pickle_uses_the_module_on_pythonpath,
    by_reference_pickle_without_the_module_fails_cleanly,
    large_arguments_round_trip,
    python_requests_client_end_to_end,
    python_client_with_the_original_route_names,
);

/// Runs `defs` in a client script and returns `{key: serialize(expr)}` for each `(key, expr)`.
async fn payloads(defs: &str, exprs: &[(&str, &str)], env: &[(&str, &str)]) -> Value {
    let dict: Vec<String> = exprs
        .iter()
        .map(|(k, e)| format!("{k:?}: serialize({e})"))
        .collect();
    let script = format!(
        "{DILL_PRELUDE}\n{defs}\nprint(json.dumps({{{}}}))\n",
        dict.join(", ")
    );
    python_json(&script, env).await
}

fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// Runs one dill call end to end and returns the `/result` reply.
async fn call(stack: &Stack, name: &str, function: &str, args: &str) -> Value {
    let fid = stack.register_dill(name, function).await;
    let tid = stack.execute_dill(fid, args).await;
    stack.wait_result(tid).await
}

#[track_caller]
fn assert_completed(reply: &Value) -> &str {
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert!(reply.get("error").is_none_or(Value::is_null), "{reply}");
    let b64 = text(&reply["result"]);
    decode_pickle_b64(b64);
    b64
}

async fn by_value_function_runs_and_returns_a_pickle(mode: Mode) {
    let stack = Stack::start(mode).await;
    let p = payloads(
        "def scaled_sum(a, b, *, scale=1):\n    return (a + b) * scale\n",
        &[("fn", "scaled_sum"), ("args", "((2, 3), {'scale': 10})")],
        &[],
    )
    .await;
    // The original clients send MIME base64: the gateway must take the newlines.
    assert!(
        text(&p["fn"]).contains('\n'),
        "payload expected to be MIME base64"
    );

    let reply = call(&stack, "scaled_sum", text(&p["fn"]), text(&p["args"])).await;
    let b64 = assert_completed(&reply);
    assert_eq!(dill_repr(b64, &[]).await, "50");
}

async fn closures_lambdas_and_structured_values_round_trip(mode: Mode) {
    let stack = Stack::start(mode).await;
    let defs = r#"
def make_summer(start):
    offset = start * 2
    def summer(xs, label="total"):
        return {label: sum(xs) + offset, "ends": (xs[0], xs[-1]), "kinds": {type(x).__name__ for x in xs}}
    return summer

summer = make_summer(5)
square = lambda x: x ** 2
"#;
    let p = payloads(
        defs,
        &[
            ("summer", "summer"),
            ("summer_args", "(([1, 2, 3],), {'label': 'sum'})"),
            ("square", "square"),
            ("square_args", "((7,), {})"),
        ],
        &[],
    )
    .await;

    let reply = call(
        &stack,
        "summer",
        text(&p["summer"]),
        text(&p["summer_args"]),
    )
    .await;
    let b64 = assert_completed(&reply);
    assert_eq!(
        dill_repr(b64, &[]).await,
        "{'sum': 16, 'ends': (1, 3), 'kinds': {'int'}}"
    );

    let reply = call(
        &stack,
        "square",
        text(&p["square"]),
        text(&p["square_args"]),
    )
    .await;
    assert_eq!(dill_repr(assert_completed(&reply), &[]).await, "49");
}

async fn exceptions_come_back_pickled_and_are_not_retried(mode: Mode) {
    let stack = Stack::start(mode).await;
    let defs = r#"
def divide(a, b):
    return a / b

def over_quota():
    # Defined inside: dill ships a function's code, not the client's globals it refers to.
    class QuotaExceeded(Exception):
        pass
    raise QuotaExceeded("custom failure")
"#;
    let p = payloads(
        defs,
        &[
            ("divide", "divide"),
            ("by_zero", "((1, 0), {})"),
            ("over_quota", "over_quota"),
            ("no_args", "((), {})"),
        ],
        &[],
    )
    .await;

    let fid = stack.register_dill("divide", text(&p["divide"])).await;
    let tid = stack.execute_dill(fid, text(&p["by_zero"])).await;
    let reply = stack.wait_result(tid).await;
    assert_eq!(reply["status"], "FAILED", "{reply}");
    assert_eq!(reply["error"]["type"], "ZeroDivisionError", "{reply}");
    let b64 = text(&reply["result"]);
    decode_pickle_b64(b64);
    assert!(
        dill_repr(b64, &[]).await.starts_with("ZeroDivisionError("),
        "result is not the pickled exception: {reply}"
    );
    // A function's own exception is final: no second attempt.
    assert_eq!(stack.task(tid).await["attempts"], 1);

    // An exception class defined by the client travels by value too.
    let reply = call(
        &stack,
        "over_quota",
        text(&p["over_quota"]),
        text(&p["no_args"]),
    )
    .await;
    assert_eq!(reply["status"], "FAILED", "{reply}");
    assert_eq!(reply["error"]["type"], "QuotaExceeded", "{reply}");
    assert_eq!(
        dill_repr(text(&reply["result"]), &[]).await,
        "QuotaExceeded('custom failure')"
    );
}

const MYMOD: &str = "def where(x):\n    return (__name__, x * 2)\n";

async fn by_reference_pickle_uses_the_module_on_pythonpath(mode: Mode) {
    let modules = TestDir::new();
    modules.write("mymod.py", MYMOD);
    let pythonpath = modules.path().to_string_lossy().into_owned();
    let stack = Stack::builder(mode)
        .env("PYTHONPATH", &pythonpath)
        .start()
        .await;
    let env = [("PYTHONPATH", pythonpath.as_str())];

    let script = format!(
        "{DILL_PRELUDE}\nimport mymod\nraw = dill.dumps(mymod.where)\n\
         print(json.dumps({{'fn': serialize(mymod.where), 'args': serialize(((21,), {{}})),\n\
         'by_reference': b'mymod' in raw and b'_create_function' not in raw}}))\n"
    );
    let p = python_json(&script, &env).await;
    assert_eq!(
        p["by_reference"], true,
        "dill pickled mymod.where by value: {p}"
    );

    let reply = call(&stack, "where", text(&p["fn"]), text(&p["args"])).await;
    let b64 = assert_completed(&reply);
    assert_eq!(dill_repr(b64, &env).await, "('mymod', 42)");
}

async fn by_reference_pickle_without_the_module_fails_cleanly(mode: Mode) {
    let modules = TestDir::new();
    modules.write("mymod.py", MYMOD);
    let pythonpath = modules.path().to_string_lossy().into_owned();
    // The client can import mymod, the platform's Python cannot.
    let stack = Stack::start(mode).await;
    let env = [("PYTHONPATH", pythonpath.as_str())];
    let script = format!(
        "{DILL_PRELUDE}\nimport mymod\n\
         print(json.dumps({{'fn': serialize(mymod.where), 'args': serialize(((21,), {{}}))}}))\n"
    );
    let p = python_json(&script, &env).await;

    let reply = call(&stack, "where", text(&p["fn"]), text(&p["args"])).await;
    assert_eq!(reply["status"], "FAILED", "{reply}");
    assert!(
        reply["error"].to_string().contains("mymod"),
        "the error should name the missing module: {reply}"
    );

    // The pool survives a function that cannot even be loaded.
    let p = payloads(
        "def ok():\n    return 'still serving'\n",
        &[("fn", "ok"), ("args", "((), {})")],
        &[],
    )
    .await;
    let reply = call(&stack, "ok", text(&p["fn"]), text(&p["args"])).await;
    assert_eq!(
        dill_repr(assert_completed(&reply), &[]).await,
        "'still serving'"
    );
}

async fn large_arguments_round_trip(mode: Mode) {
    let stack = Stack::start(mode).await;
    let p = payloads(
        "def stats(blob):\n    return (len(blob), blob[:3], blob[-3:])\n",
        &[
            ("fn", "stats"),
            ("args", "((bytes(range(256)) * 800,), {})"),
        ],
        &[],
    )
    .await;
    let reply = call(&stack, "stats", text(&p["fn"]), text(&p["args"])).await;
    let b64 = assert_completed(&reply);
    assert_eq!(
        dill_repr(b64, &[]).await,
        r"(204800, b'\x00\x01\x02', b'\xfd\xfe\xff')"
    );
}

/// The original client's whole flow, in Python with `requests`: register, execute, poll the
/// status, fetch and deserialize the result.
async fn python_requests_client_end_to_end(mode: Mode) {
    original_client_flow(mode, "status", "result").await;
}

/// The same flow on the original platform's route names, whose README and `client.py` poll
/// `/get_task_status` and read `/get_task_result` (also with `?wait=`).
async fn python_client_with_the_original_route_names(mode: Mode) {
    original_client_flow(mode, "get_task_status", "get_task_result").await;
}

async fn original_client_flow(mode: Mode, status_route: &str, result_route: &str) {
    let stack = Stack::start(mode).await;
    let script = format!(
        r#"{DILL_PRELUDE}
import time
import requests

BASE = os.environ["FAAS_URL"]

def square_plus(x, y=1):
    return x * x + y

r = requests.post(f"{{BASE}}/register_function",
                  json={{"name": "square_plus", "payload": serialize(square_plus)}})
r.raise_for_status()
fid = r.json()["function_id"]

tids = []
for i in range(5):
    r = requests.post(f"{{BASE}}/execute_function",
                      json={{"function_id": fid, "payload": serialize(((i,), {{"y": 10}}))}})
    r.raise_for_status()
    tids.append(r.json()["task_id"])

results = []
for tid in tids:
    deadline = time.time() + 60
    while requests.get(f"{{BASE}}/{status_route}/{{tid}}").json()["status"] not in ("COMPLETED", "FAILED"):
        assert time.time() < deadline, f"task {{tid}} did not finish"
        time.sleep(0.05)
    body = requests.get(f"{{BASE}}/{result_route}/{{tid}}").json()
    assert body["status"] == "COMPLETED", body
    results.append(deserialize(body["result"]))

# A result read with a wait answers as soon as the task ends.
r = requests.post(f"{{BASE}}/execute_function",
                  json={{"function_id": fid, "payload": serialize(((6,), {{}}))}})
body = requests.get(f"{{BASE}}/{result_route}/{{r.json()['task_id']}}", params={{"wait": 30000}}).json()
assert body["status"] == "COMPLETED", body
results.append(deserialize(body["result"]))
print("results:", results)
"#
    );
    let out = run_python(&script, &[("FAAS_URL", stack.base_url())]).await;
    assert!(
        out.contains("results: [10, 11, 14, 19, 26, 37]"),
        "unexpected client output:\n{out}"
    );
}
