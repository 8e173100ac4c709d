"""Drives halo's dashboard in headless Chromium (selenium + Debian's chromium
and chromedriver), for crates/halo/tests/dashboard.rs.

argv: dashboard URL, admin token, screenshot path. Protocol on stdout/stdin
with the Rust test: prints READY once app/s1 shows UP and the GSLB row of
service app shows what sites east (this node) and west (its peer) answer,
and both sites are marked as where clients of app are sent; then waits for a line
(the test has stopped s1's backend), sees s1 go DOWN (red), types the token,
clicks "drain" on app/s2, sees the state change, takes the screenshot and
prints DONE. Any failure: a message on stderr and exit status 1.
"""
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

url, token, shot = sys.argv[1], sys.argv[2], sys.argv[3]
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--disable-background-networking", "--disable-component-update",
          "--disable-sync", "--no-first-run", "--window-size=1280,900"]:
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
wait = WebDriverWait(driver, 30, poll_frequency=0.1)


def row(server):
    return driver.find_element(By.CSS_SELECTOR, f'tr[data-server="{server}"]')


def attr_is(server, name, value):
    def check(_):
        try:
            return row(server).get_attribute(name) == value
        except Exception:
            return False
    return check


def node_answer(site):
    """What the GSLB row of service app says site's DNS answers."""
    try:
        return driver.find_element(
            By.CSS_SELECTOR, f'tr[data-service="app"] [data-node-site="{site}"]').text
    except Exception:
        return ""


def sent_here(site):
    try:
        return driver.find_element(By.CSS_SELECTOR, f'tr[data-site="{site}"] td.sent').text
    except Exception:
        return ""


try:
    driver.get(url)
    wait.until(attr_is("app/s1", "data-health", "up"))
    # Site east (this node) answers both sites' addresses once its pool is
    # up; site west (the peer, asked over DNS) only its own.
    wait.until(lambda d: "192.0.2.10" in node_answer("east") and "192.0.2.20" in node_answer("east"))
    wait.until(lambda d: "192.0.2.20" in node_answer("west"))
    assert "192.0.2.10" not in node_answer("west"), node_answer("west")
    wait.until(lambda d: "app" in sent_here("east") and "app" in sent_here("west"))
    print("READY", flush=True)
    sys.stdin.readline()
    wait.until(attr_is("app/s1", "data-health", "down"))
    dot = row("app/s1").find_element(By.CSS_SELECTOR, ".dot")
    assert "down" in dot.get_attribute("class"), dot.get_attribute("class")
    colour = dot.value_of_css_property("background-color")
    assert colour.startswith("rgba(214, 69, 69") or colour.startswith("rgb(214, 69, 69"), colour
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", field)
    row("app/s2").find_element(By.CSS_SELECTOR, 'button[data-action="drain"]').click()
    wait.until(attr_is("app/s2", "data-admin", "drain"))
    wait.until(lambda d: "app/s2 admin state drain" in d.find_element(By.ID, "events").text)
    events = driver.find_element(By.ID, "events").text
    assert "app/s1 is DOWN" in events, events
    # With s1 down and s2 drained, east's pool takes no new traffic: its
    # address leaves the GSLB answer, and the site is no longer where app's
    # clients are sent.
    wait.until(lambda d: "192.0.2.10" not in node_answer("east"))
    wait.until(lambda d: "app" not in sent_here("east") and "app" in sent_here("west"))
    driver.save_screenshot(shot)
    print("DONE", flush=True)
except Exception as e:  # report and fail
    print(f"dashboard test failed: {type(e).__name__}: {e}", file=sys.stderr)
    try:
        print(driver.find_element(By.TAG_NAME, "main").text[:3000], file=sys.stderr)
    except Exception:
        pass
    sys.exit(1)
finally:
    driver.quit()
