"""Example: register Python functions with the FaaS platform, run them, print the results.

Start the platform first (`faas up`, or `cargo run --bin faas -- up`), then:

    .venv/bin/python demo/python/example.py

(`pip install ./demo/python` installs faas_client anywhere; run from here, the script finds the
package beside it.)

FAAS_GATEWAY_URL and FAAS_TOKEN choose the gateway and its token.
"""

import faas_client as faas


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def square(x):
    return x * x


def divide(a, b):
    return a / b


ADD_SOURCE = """
def add(a, b, scale=1):
    return (a + b) * scale
"""


def main():
    # A dill function: any picklable callable, with Python arguments and results.
    fib_id = faas.register(fib)
    task = faas.run(fib_id, 30)
    print(f"fib(30) = {faas.result(task, wait=60)}")

    # Keyword arguments travel too, and a remote exception is raised here as itself.
    divide_id = faas.register(divide, name="divide")
    print(f"divide(a=7, b=2) = {faas.result(faas.run(divide_id, a=7, b=2))}")
    try:
        faas.result(faas.run(divide_id, 1, 0))
    except ZeroDivisionError as e:
        print(f"divide(1, 0) raised ZeroDivisionError: {e}")

    # A source function: Python text plus an entrypoint, JSON arguments and results.
    add_id = faas.register_source(ADD_SOURCE, "add")
    print(f"add(2, 3, scale=10) = {faas.result_json(faas.run_json(add_id, [2, 3], {'scale': 10}))}")

    # Many tasks: a concurrent.futures executor, batched submissions, one result stream.
    with faas.Executor() as executor:
        total = sum(executor.map(square, range(100)))
        print(f"executor: sum of squares 0..99 = {total}")


if __name__ == "__main__":
    main()
