import httpx

def test_smoke(gateway, openai_emulator):
    r = httpx.post(gateway.v1 + "/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi there"}]},
                   headers={"x-portkey-provider": "openai", "Authorization": "Bearer sk-x"})
    print(r.status_code, r.headers, r.text)
    assert r.status_code == 200
    r = httpx.post(gateway.v1 + "/chat/completions", json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi there"}]},
                   headers={"x-portkey-provider": "openai", "Authorization": "Bearer sk-x"})
    print(r.status_code, r.headers, r.text)
    assert r.status_code == 200
