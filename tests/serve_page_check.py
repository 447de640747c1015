#!/usr/bin/env python3
"""The page of `swa serve` (GET /) in headless Chromium, on the bigram checkpoint of
generate_test_model, whose greedy text is known: the page loads without script errors; a
prompt typed by key input gives the whole text and the finish line; a never-ending
prompt shows its text growing while it streams, Stop ends it, and the server frees the
stream; the two charts of /metrics are drawn.

Uses Debian's chromium and chromium-driver at fixed paths, so that Selenium Manager never
runs and nothing is downloaded.

Usage: serve_page_check.py SWA_BINARY GENERATE_TEST_MODEL   (needs selenium, prometheus_client)
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from serve_check import CHAINS, Server, check, failures

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WHOLE_TEST_SECONDS = 85
LONG_MAX_TOKENS = 60000  # within the server's default max_tokens limit of 65536
LOOP_TEXT = ("Rr" * LONG_MAX_TOKENS)[:LONG_MAX_TOKENS]  # greedy text of prompt "r"


def on_alarm(signum, frame):
    raise TimeoutError(f"the whole test ran past {WHOLE_TEST_SECONDS} s")


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                # Chromium's own services (updates, autofill, sign-in) would look up Google's hosts:
                # off, and any name but the server's address resolves to nothing.
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--no-first-run", "--no-pings", "--disable-domain-reliability",
                "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    return driver


def type_into(driver, element_id, text):
    element = driver.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(text)


def page_state(driver):
    return driver.execute_script(
        "const $ = (id) => document.getElementById(id);"
        "return [$('out').textContent, $('status').textContent, $('go').disabled, $('stop').disabled];")


def page_loads(driver, server):
    driver.get(f"http://{server.host}:{server.port}/")
    check(driver.title == "swa serve", f"page title {driver.title!r}, want 'swa serve'")
    for element_id in ("prompt", "max_tokens", "temperature", "top_k", "seed", "go", "stop", "out", "status",
                       "rate", "cache"):
        check(driver.find_elements(By.ID, element_id), f"the page has no #{element_id}")
    _, status, go_disabled, stop_disabled = page_state(driver)
    check(status == "" and not go_disabled and stop_disabled,
          f"fresh page: status {status!r}, go disabled {go_disabled}, stop disabled {stop_disabled}")


def finished_prompt(driver):
    type_into(driver, "prompt", "k")
    type_into(driver, "temperature", "0")
    type_into(driver, "max_tokens", "10")
    driver.find_element(By.ID, "go").click()
    try:
        WebDriverWait(driver, 10).until(lambda d: page_state(d)[1] != "" and not page_state(d)[2])
    except TimeoutException:
        failures.append(f"prompt 'k': no finish line within 10 s, page {page_state(driver)}")
        return
    out, status, _, stop_disabled = page_state(driver)
    check(out == "ABCDE", f"prompt 'k': #out {out!r}, want 'ABCDE'")
    # 5 bytes of text and the EOS token: usage.completion_tokens counts every sampled token.
    check(status == "finish: stop, 6 tokens", f"prompt 'k': #status {status!r}, want 'finish: stop, 6 tokens'")
    check(stop_disabled, "prompt 'k': Stop still enabled after the stream ended")


def streaming_and_stop(driver, server, page_loaded_at):
    type_into(driver, "prompt", "r")
    type_into(driver, "temperature", "0")
    type_into(driver, "max_tokens", str(LONG_MAX_TOKENS))
    driver.find_element(By.ID, "go").click()
    partial = []  # distinct texts seen while the stream ran
    deadline = time.time() + 10
    while len(partial) < 3 and time.time() < deadline:
        out, status, go_disabled, _ = page_state(driver)
        if status != "" or not go_disabled:
            failures.append(f"prompt 'r': the stream ended by itself: status {status!r}, {len(out)} chars")
            return
        if out and (not partial or partial[-1] != out):
            partial.append(out)
        time.sleep(0.05)
    check(len(partial) >= 2, f"prompt 'r': saw {len(partial)} distinct partial texts in 10 s, want 2 or more")
    for text in partial:
        check(len(text) < LONG_MAX_TOKENS and LOOP_TEXT.startswith(text),
              f"prompt 'r': partial text of {len(text)} chars is not a proper prefix of 'RrRr...': {text[:40]!r}")
    check(all(len(a) < len(b) for a, b in zip(partial, partial[1:])), "prompt 'r': the text did not only grow")
    m = server.metrics()
    check(m.get(("swa_active_streams", ())) == 1, f"mid-stream: swa_active_streams {m.get(('swa_active_streams', ()))}")

    # Both charts have had at least two samples of /metrics (once a second) by now.
    time.sleep(max(0.0, page_loaded_at + 3.5 - time.time()))
    charts_drawn(driver)

    driver.find_element(By.ID, "stop").click()
    try:
        WebDriverWait(driver, 5).until(lambda d: not page_state(d)[2])
    except TimeoutException:
        failures.append("Stop: #go not enabled again within 5 s")
    out, status, _, stop_disabled = page_state(driver)
    check(stop_disabled, "Stop: #stop still enabled")
    check(status == "", f"Stop: #status {status!r}, want empty (an abort is not an error)")
    check(len(out) < LONG_MAX_TOKENS and LOOP_TEXT.startswith(out), f"Stop: #out is not a prefix: {out[:40]!r}")
    deadline = time.time() + 5
    while time.time() < deadline:
        m = server.metrics()
        if m.get(("swa_active_streams", ())) == 0 and m.get(("swa_queue_depth", ())) == 0:
            break
        time.sleep(0.05)
    check(m.get(("swa_active_streams", ())) == 0, "Stop: the server still has an active stream after 5 s")
    check(m.get(("swa_kv_cache_bytes_total", ())) == 0, "Stop: KV-cache bytes still held")
    # 6 tokens for prompt 'k', then fewer than max_tokens for the stopped stream.
    generated = m.get(("swa_generated_tokens_total", ()))
    check(generated is not None and generated < 6 + LONG_MAX_TOKENS,
          f"Stop: {generated} tokens generated, the stopped stream ran to max_tokens")


def charts_drawn(driver):
    for canvas_id in ("rate", "cache"):
        drawn, blank, line_pixels = driver.execute_script(
            "const c = document.getElementById(arguments[0]);"
            "const blank = document.createElement('canvas');"
            "blank.width = c.width; blank.height = c.height;"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            # Pixels of the chart's line colour #2a6 (green well above red and blue).
            "let line = 0;"
            "for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 1] > d[i] + 60 && d[i + 1] > d[i + 2] + 30) ++line;"
            "return [c.toDataURL(), blank.toDataURL(), line];", canvas_id)
        check(drawn != blank, f"canvas #{canvas_id} is blank")
        check(line_pixels >= 20, f"canvas #{canvas_id}: {line_pixels} pixels of the line colour, want a line")


def browser_errors(driver):
    try:
        entries = driver.get_log("browser")
    except Exception as e:  # noqa: BLE001 - a driver without the log endpoint: say so, do not fail
        print(f"note: the browser log is not available: {e}")
        return
    # The browser asks for /favicon.ico by itself; the server has none (404), which is no error of the page.
    errors = [e["message"] for e in entries if e.get("level") == "SEVERE" and "/favicon.ico " not in e["message"]]
    check(not errors, f"errors in the browser console: {errors}")


def main():
    swa, tool = sys.argv[1], sys.argv[2]
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        print(f"FAIL: {' and '.join(missing)} missing: install Debian's packages chromium and chromium-driver")
        sys.exit(1)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(WHOLE_TEST_SECONDS)
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "bigram.safetensors")
        subprocess.run([tool, model] + [",".join(map(str, c)) for c in CHAINS], check=True, timeout=30)
        server = Server(swa, model)
        driver = None
        try:
            driver = start_browser()
            page_loads(driver, server)
            page_loaded_at = time.time()
            finished_prompt(driver)
            streaming_and_stop(driver, server, page_loaded_at)
            browser_errors(driver)
        except Exception as e:  # noqa: BLE001 - any error is a failure with its message
            failures.append(f"{type(e).__name__}: {e}")
        finally:
            signal.alarm(0)
            if driver is not None:
                driver.quit()
            server.proc.kill()
            server.proc.wait(timeout=30)
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("ok: page loads, typed prompt 'k' gives ABCDE and its finish line, prompt 'r' streams and stops, "
          "charts drawn")


if __name__ == "__main__":
    main()
