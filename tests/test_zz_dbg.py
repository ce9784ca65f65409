from tests.test_login_page import *
def test_dbg(browser, owner, page):
    template, router = login_template(browser, owner)
    chap = (b"\x00", bytes(range(250, 256)) + b"\\'\"$\n\r\x00xyz")
    msgs=[]
    page.on("console", lambda m: msgs.append(m.text))
    page.on("pageerror", lambda e: msgs.append(str(e)))
    with FakeRouter(template, chap) as fake:
        page.goto(f"{fake.url}/login")
        print(page.evaluate("typeof login"), page.evaluate("typeof hexMD5"))
        page.fill("input[name=username]", "kq9m2")
        with page.expect_request(lambda r: r.method == "POST") as req:
            page.click("text=Se connecter")
        print(req.value.post_data, msgs, fake.requests)
