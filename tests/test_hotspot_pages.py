"""The kit script installs Kiosque's hotspot pages in one paste: fetched through a one-time link into a
directory of their own, the hotspot switched to it, the way back shown, the result checked."""

import re
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import Router, utcnow
from portal.services import hotspot_pages, setup_kit
from portal.services.setup_kit import ScriptOptions, render_script
from tests.conftest import SECRETS, add_tested_router, page_text, router_values
from tests.factories import make_kit_router
from tests.support import read_literal, script_password

PUBLIC_URL = "https://kiosque.example.com"
FETCH = re.compile(r'^/tool fetch url=("(?:[^"\\]|\\.)*") dst-path=("(?:[^"\\]|\\.)*")$')
SWITCH = re.compile(r'^/ip hotspot profile set \[find name=("(?:[^"\\]|\\.)*")\] html-directory=("(?:[^"\\]|\\.)*")$')


@pytest.fixture
def app_config(app_config):
    return {**app_config, "PUBLIC_URL": PUBLIC_URL}


def profiles_facts(*profiles: tuple[str, str], servers: tuple[str, ...] = ()) -> dict:
    """Facts of a router whose hotspot servers use these (name, html-directory) profiles."""
    return {"servers": [{"name": f"hotspot{i}", "profile": name} for i, (name, _dir) in enumerate(profiles)
                        if not servers or name in servers],
            "server_profiles": [{"name": name, "dns_name": "", "login_by": "cookie,http-chap", "html_directory": d}
                                for name, d in profiles]}


def pages_part(script: str) -> list[str]:
    lines = script.splitlines()
    return lines[lines.index("# Kiosque: hotspot pages, in their own directory (the current pages stay where "
                              "they are)"):-1]


# -- the script's lines ------------------------------------------------------------------------------


def test_script_fetches_every_page_then_switches_the_profile_last(app):
    router = make_kit_router(facts=profiles_facts(("hsprof1", "flash/hotspot")))
    with app.test_request_context():
        part = setup_kit.pages_lines(router, "T0ken-_x")
        script = render_script(router, "pw", ScriptOptions(http_pap_profiles=()), kiosque_host="kiosque.example.com",
                               source="", pages_part=part)
    lines = script.splitlines()
    assert lines[-1] == ':put "Kiosque: Maquis OK"'
    assert lines.index(part[0]) > max(i for i, line in enumerate(lines) if line.startswith("/user "))
    assert pages_part(script) == part
    fetched = [FETCH.match(line) for line in part[1:-1]]
    assert all(fetched), part
    assert [(read_literal(m.group(1)), read_literal(m.group(2))) for m in fetched] == [
        (f"{PUBLIC_URL}/p/T0ken-_x/{name}", f"flash/kiosque/{name}") for name in hotspot_pages.PAGES]
    assert part[-1] == '/ip hotspot profile set [find name="hsprof1"] html-directory="flash/kiosque"'


@pytest.mark.parametrize("current, directory", [("hotspot", "kiosque"), ("flash/hotspot", "flash/kiosque"),
                                                ("flash/mikhmon", "flash/kiosque"), ("mikhmon", "kiosque"),
                                                ("kiosque", "kiosque"), ("flash/kiosque", "flash/kiosque")])
def test_directory_next_to_the_current_one_and_the_same_once_switched(app, current, directory):
    router = make_kit_router(facts=profiles_facts(("hsprof1", current)))
    with app.test_request_context():
        assert setup_kit.pages_directory(router) == directory
        assert setup_kit.pages_lines(router, "t")[-1].endswith(f'html-directory="{directory}"')


def test_every_profile_in_use_is_switched_and_given_its_own_way_back(app):
    facts = profiles_facts(("hsprof1", "flash/kiosque"), ("weird", "flash/mikhmon"), ("unused", "x"),
                           servers=("hsprof1", "weird"))  # "unused" serves no hotspot server
    router = make_kit_router(facts=facts | {"html_directories_before": {"hsprof1": "flash/hotspot"}})  # read before
    with app.test_request_context():
        switches = [line for line in setup_kit.pages_lines(router, "t") if line.startswith("/ip hotspot")]
    assert switches == ['/ip hotspot profile set [find name="hsprof1"] html-directory="flash/kiosque"',
                        '/ip hotspot profile set [find name="weird"] html-directory="flash/kiosque"']
    assert setup_kit.go_back_lines(router) == [
        '/ip hotspot profile set [find name="hsprof1"] html-directory="flash/hotspot"',
        '/ip hotspot profile set [find name="weird"] html-directory="flash/mikhmon"']


def test_hostile_profile_name_stays_inside_its_quotes(app):
    evil = 'p"] ; /system reboot ; :put ["$(x)?'
    router = make_kit_router(facts=profiles_facts((evil, "hotspot")))
    with app.test_request_context():
        part = setup_kit.pages_lines(router, "t")
    assert part[-1] == r'/ip hotspot profile set [find name="p\"] ; /system reboot ; :put [\"\$(x)\?"] ' \
                       r'html-directory="kiosque"'
    assert read_literal(SWITCH.match(part[-1]).group(1)) == evil
    assert read_literal(SWITCH.match(setup_kit.go_back_lines(router)[0]).group(1)) == evil


def test_same_lines_for_routeros_6_and_7(app):
    """`/tool fetch url= dst-path=` and `html-directory` read the same on 6.4x and 7.x (docs/routeros.md)."""
    scripts = []
    router = make_kit_router(facts=profiles_facts(("hsprof1", "flash/hotspot")))
    for version in ("6.49.10 (long-term)", "7.16.2 (stable)"):
        router.ros_version = version
        with app.test_request_context():
            scripts.append(setup_kit.pages_lines(router, "t"))
    assert scripts[0] == scripts[1] and scripts[0]


def test_no_pages_part_until_the_profiles_were_read(app):
    unread = make_kit_router(facts={"servers": [{"name": "hotspot1", "profile": "hsprof1"}],
                                    "server_profiles": [{"name": "hsprof1", "dns_name": "", "login_by": "cookie"}]})
    with app.test_request_context():
        assert setup_kit.pages_lines(unread, "t") == [] and setup_kit.go_back_lines(unread) == []
        assert "testez la connexion" in setup_kit.pages_status(unread)


# -- the one-time link -------------------------------------------------------------------------------


def generate(browser, router: Router) -> tuple[str, str]:
    """The owner generates the kit script: the script, and its sealed token for the confirmation."""
    page = page_text(browser.post(f"/owner/routers/{router.id}/kit", {}))
    script = re.search(r'<textarea id="script"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    link = re.search(r"/p/([^/]+)/login\.html", script).group(1)
    SECRETS.add(link)  # the log check at the end of the run looks for it in every record
    return script, re.search(r'name="token" value="([^"]+)"', page).group(1)


def run_pages_part(client, router_server, script: str) -> dict[str, str]:
    """What a router does with the script's pages part: fetch each file (a failed fetch stops the
    script), then set the profiles' html-directory. The files, by path."""
    files = {}
    for line in pages_part(script)[1:]:
        if fetch := FETCH.match(line):
            url, path = read_literal(fetch.group(1)), read_literal(fetch.group(2))
            response = client.get(url.removeprefix(PUBLIC_URL))
            assert response.status_code == 200, (url, response.status_code)
            files[path] = response.get_data(as_text=True)
        else:
            switch = SWITCH.match(line)
            router_server.set_server_profile(read_literal(switch.group(1)), html_directory=read_literal(switch.group(2)))
    return files


def link_urls(script: str) -> list[str]:
    return [read_literal(FETCH.match(line).group(1)).removeprefix(PUBLIC_URL) for line in pages_part(script)[1:-1]]


def test_link_serves_the_whole_set_while_valid_and_nothing_after(app, browser, router_server):
    router = add_tested_router(browser, router_server)
    script, _token = generate(browser, router)
    anonymous = app.test_client()
    urls = link_urls(script)
    for _round in range(2):  # a router may run the script again: every file, every time, until expiry
        for url in urls:
            response = anonymous.get(url)
            assert response.status_code == 200, url
            assert response.headers["Cache-Control"] == "no-store"
    assert anonymous.get(urls[0]).mimetype == "text/html"
    assert anonymous.get(urls[0].replace("login.html", "errors.txt")).mimetype == "text/plain"
    assert anonymous.get(urls[0].replace("login.html", "md5.js")).mimetype == "text/javascript"
    assert anonymous.get(urls[0].replace("login.html", "secret.html")).status_code == 404
    assert anonymous.get(urls[0].replace("login.html", "..%2Fconfig.py")).status_code == 404

    db.session.refresh(router)
    link = urls[0].split("/")[2]
    assert router.pages_link_hash and link not in router.pages_link_hash  # only a hash is kept
    router.pages_link_expires_at = utcnow() - timedelta(seconds=1)  # an hour went by
    db.session.commit()
    assert {anonymous.get(url).status_code for url in urls} == {404}


def test_a_new_script_kills_the_old_link_and_links_are_per_router(app, browser, router_server):
    router = add_tested_router(browser, router_server)
    old, _token = generate(browser, router)
    new, _token = generate(browser, router)
    anonymous = app.test_client()
    assert anonymous.get(link_urls(old)[0]).status_code == 404
    assert anonymous.get(link_urls(new)[0]).status_code == 200
    assert anonymous.get("/p/unknown-token/login.html").status_code == 404

    browser.post("/owner/routers/new", router_values(router_server, name="Autre Wifi"))
    other = db.session.scalar(db.select(Router).where(Router.name == "Autre Wifi"))
    browser.post(f"/owner/routers/{other.id}/test")
    theirs, _token = generate(browser, other)
    assert "Autre Wifi" in anonymous.get(link_urls(theirs)[0]).get_data(as_text=True)
    assert "Autre Wifi" not in anonymous.get(link_urls(new)[0]).get_data(as_text=True)

# -- the pages ---------------------------------------------------------------------------------------


def test_page_set_is_french_small_and_self_contained(app, browser, router_server):
    router = add_tested_router(browser, router_server)
    script, _token = generate(browser, router)
    files = run_pages_part(app.test_client(), router_server, script)
    assert sorted(files) == sorted(f"kiosque/{name}" for name in hotspot_pages.PAGES)
    for path, body in files.items():
        assert len(body.encode()) < 8000, path
        assert not re.search(r"(src|href)=\"https?://", body.replace(f'href="{PUBLIC_URL}/', "")), path
    assert "Vous êtes connecté" in files["kiosque/alogin.html"] and "$(link-redirect)" in files["kiosque/alogin.html"]
    assert '<form action="$(link-logout)" name="logout">' in files["kiosque/status.html"]  # a GET, as the stock page
    assert files["kiosque/rlogin.html"].startswith("$(if http-status == 302)")
    assert "$(error)" in files["kiosque/error.html"]
    assert "invalid-username = code ou mot de passe incorrect" in files["kiosque/errors.txt"]
    assert '<script src="/md5.js"></script>' in files["kiosque/login.html"]  # served from the same directory
    assert "function hexMD5(" in files["kiosque/md5.js"]


# -- the check after the script ----------------------------------------------------------------------


@pytest.mark.parametrize("current, directory", [("hotspot", "kiosque"), ("flash/hotspot", "flash/kiosque")])
def test_check_after_the_script_sees_the_pages_and_closes_the_link(app, browser, router_server, current, directory):
    router_server.set_server_profile("hsprof1", html_directory=current)
    router = add_tested_router(browser, router_server)
    kit = page_text(browser.get(f"/owner/routers/{router.id}/kit"))
    assert f"Le hotspot affiche encore ses propres pages (dossier « {current} »)" in kit

    script, token = generate(browser, router)
    password = script_password(script)
    anonymous = app.test_client()
    run_pages_part(anonymous, router_server, script)
    router_server.username, router_server.password = "kiosque", password
    done = browser.post(f"/owner/routers/{router.id}/kit/confirm", {"token": token})
    assert done.status_code == 302
    kit = page_text(browser.get(done.headers["Location"]))
    assert f"Les pages de Kiosque sont en place : le hotspot utilise le dossier « {directory} »." in kit
    go_back = f'/ip hotspot profile set [find name="hsprof1"] html-directory="{current}"'
    assert go_back in kit
    assert anonymous.get(link_urls(script)[0]).status_code == 404  # the link is closed

    # Tested again later, the way back still names the owner's directory, not Kiosque's.
    assert browser.post(f"/owner/routers/{router.id}/test").status_code == 200
    assert go_back in page_text(browser.get(f"/owner/routers/{router.id}/kit"))
    # And a new script for the same router keeps Kiosque's directory (running it again changes nothing).
    again, _token = generate(browser, router)
    assert pages_part(again)[-1] == f'/ip hotspot profile set [find name="hsprof1"] html-directory="{directory}"'


def test_check_says_so_when_the_pages_are_not_in_place(app, browser, router_server):
    router = add_tested_router(browser, router_server)
    script, token = generate(browser, router)
    router_server.username, router_server.password = "kiosque", script_password(script)
    done = browser.post(f"/owner/routers/{router.id}/kit/confirm", {"token": token})  # the fetch had failed
    kit = page_text(browser.get(done.headers["Location"]))
    assert "Le hotspot affiche encore ses propres pages (dossier « hotspot »)" in kit
    assert "Si la commande fetch échoue" in kit
    assert app.test_client().get(link_urls(script)[0]).status_code == 200  # still open until it expires


def test_an_owner_keeping_their_pages_gets_no_pages_part_and_no_link(browser, router_server):
    router = add_tested_router(browser, router_server)
    page = page_text(browser.post(f"/owner/routers/{router.id}/kit", {"keep_own_pages": "y"}))
    script = re.search(r'<textarea id="script"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    assert "/tool fetch" not in script and "html-directory" not in script
    assert 'name="keep_own_pages" value="y" checked' in page
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    download = browser.post(f"/owner/routers/{router.id}/kit/kiosque.rsc", {"token": token})
    assert download.get_data(as_text=True) == script  # the choice is sealed with the script
    db.session.refresh(router)
    assert router.pages_link_hash is None
