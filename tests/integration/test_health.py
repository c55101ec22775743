"""GET /healthz reports each dependency on its own."""
from __future__ import annotations

from tests.conftest import make_test_app


def test_healthz_names_the_bot_when_only_the_bot_is_down(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "ok"
    assert body["down"] == ["bot"]


def test_healthz_names_redis_when_redis_is_unreachable(app, session):
    broken = make_test_app(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert "redis" in body["down"]
    assert body["checks"]["database"] == "ok"


def test_healthz_is_200_when_everything_answers(app, session, tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class FakeRasaStatus(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"model_file": "x"}')

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), FakeRasaStatus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        up = make_test_app(RASA_URL=f"http://127.0.0.1:{server.server_port}")
        response = up.test_client().get("/healthz")
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["down"] == []
    finally:
        server.shutdown()


def test_openapi_document_is_served_and_declares_the_internal_api(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/internal/handoff" in spec["paths"]
    assert "/healthz" in spec["paths"]


def test_livez_answers_while_its_dependencies_are_down(app, session):
    # Nothing listens on port 1: the database and the bot are unreachable. (Redis stays: flask-limiter's
    # storage is one per process, and the next test's app would inherit the broken one.)
    broken = make_test_app(DATABASE_URL="postgresql://root@127.0.0.1:1/none", RASA_URL="http://127.0.0.1:1")
    response = broken.test_client().get("/livez")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert broken.test_client().get("/healthz").status_code == 503  # the same app is not healthy
