"""A local HTTP server implementing OpenAI's files and fine-tuning job endpoints, with scripted job states."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FineTuneAPI:
    """`statuses`: what successive GETs of a job return; the last one sticks. `error` for failed jobs."""

    def __init__(self, statuses=("queued", "running", "succeeded"), error=None, key="sk-test-key"):
        self.statuses, self.error, self.key = list(statuses), error, key
        self.files, self.jobs, self.requests = {}, {}, []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self):
                if self.headers.get("Authorization") != f"Bearer {api.key}":
                    self._reply(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
                    return False
                return True

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                api.requests.append(("POST", self.path))
                if not self._authorised():
                    return
                if self.path.endswith("/files"):
                    file_id = f"file-{len(api.files) + 1}"
                    api.files[file_id] = body
                    return self._reply(200, {"id": file_id, "object": "file", "bytes": len(body), "created_at": 0,
                                             "filename": "train.jsonl", "purpose": "fine-tune", "status": "processed"})
                if self.path.endswith("/fine_tuning/jobs"):
                    request = json.loads(body)
                    if request["training_file"] not in api.files:
                        return self._reply(400, {"error": {"message": "unknown file"}})
                    job_id = f"ftjob-{len(api.jobs) + 1}"
                    api.jobs[job_id] = {"request": request, "polls": 0}
                    return self._reply(200, api.job(job_id, "validating_files"))
                self._reply(404, {"error": {"message": "not found"}})

            def do_GET(self):
                api.requests.append(("GET", self.path))
                if not self._authorised():
                    return
                match = re.search(r"/fine_tuning/jobs/([^/]+)$", self.path)
                if not match or match.group(1) not in api.jobs:
                    return self._reply(404, {"error": {"message": "no such job"}})
                job = api.jobs[match.group(1)]
                status = api.statuses[min(job["polls"], len(api.statuses) - 1)]
                job["polls"] += 1
                self._reply(200, api.job(match.group(1), status))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def job(self, job_id, status):
        request = self.jobs[job_id]["request"]
        done = status == "succeeded"
        return {"id": job_id, "object": "fine_tuning.job", "created_at": 0, "model": request["model"],
                "training_file": request["training_file"], "status": status, "organization_id": "org",
                "result_files": [], "hyperparameters": request.get("hyperparameters") or {"n_epochs": "auto"},
                "seed": request.get("seed") or 0, "validation_file": None, "finished_at": 1 if done else None,
                "trained_tokens": 1234 if done else None,
                "fine_tuned_model": f"ft:{request['model']}:org:{request.get('suffix') or 'x'}:{job_id}" if done else None,
                "error": ({"code": "invalid_training_file", "message": self.error, "param": "training_file"}
                          if status == "failed" and self.error else None)}

    @property
    def api_base(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
