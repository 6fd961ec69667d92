# zapstream developer entry points. `make dev` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PATH := $(HOME)/.local/bin:$(PATH)

UV      ?= uv
RUN     := $(UV) run --frozen
DATA    := .data
RUNDIR  := $(DATA)/run
DEMO_KEY ?= zs_live_demo_key_change_me
DEMO_TENANT ?= demo

SERVICES := wa_simulator projector session_runner command_api ws_gateway webhooks campaign_runner analytics

.PHONY: help install infra-up infra-down bootstrap console dev dev-down status test test-unit test-browser lint schemas schemas-check replay replay-check bench test-faults test-faults-cluster clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install:  ## install system packages, uv, the Kafka jars and the Python workspace
	bash infra/bin/bootstrap.sh
	$(UV) sync --frozen

infra-up: install  ## start Kafka (KRaft), PostgreSQL and the S3 server (S3Proxy) on 127.0.0.1
	bash infra/bin/kafka.sh up
	bash infra/bin/postgres.sh up
	bash infra/bin/s3.sh up
	bash infra/bin/kafka.sh wait
	bash infra/bin/postgres.sh wait
	bash infra/bin/s3.sh wait

infra-down:  ## stop Kafka, PostgreSQL and S3 (data stays in .data/)
	-bash infra/bin/kafka.sh down
	-bash infra/bin/postgres.sh down
	-bash infra/bin/s3.sh down

bootstrap: infra-up  ## create topics and apply migrations (idempotent)
	$(RUN) python -m zapstream_platform bootstrap

console:  ## build the web console (npm ci && npm run build -> console/dist); skipped without Node 20.19+
	@bash infra/bin/console.sh build

dev: bootstrap dev-down console  ## start everything: infra, the four services, the WhatsApp simulator and the console
	@mkdir -p $(RUNDIR)
	@$(RUN) python -m zapstream_platform create-key --tenant $(DEMO_TENANT) --name demo --key $(DEMO_KEY) >/dev/null
	@# The venv's python itself, not `uv run` (a wrapper whose pid is not the service's):
	@# the pid files must name the processes that dev-down and the fault tests signal.
	@for svc in $(SERVICES); do \
	  COMMAND_API_DEV_MODE=true WS_GATEWAY_DEV_MODE=true COMMAND_API_APP_BASE_URL=http://127.0.0.1:8080 \
	  COMMAND_API_AUTH__REQUIRE_VERIFIED_EMAIL=false \
	  nohup .venv/bin/python -m $$svc >$(RUNDIR)/$$svc.log 2>&1 & echo $$! >$(RUNDIR)/$$svc.pid; \
	done
	@for url in http://127.0.0.1:8090/control/stats http://127.0.0.1:8080/healthz http://127.0.0.1:8081/healthz; do \
	  for i in $$(seq 1 60); do curl -fs $$url >/dev/null && break; sleep 0.5; done; \
	  curl -fs $$url >/dev/null || { echo "not ready: $$url (see $(RUNDIR)/*.log)"; exit 1; }; \
	done
	@echo ""
	@if [ -f console/dist/index.html ]; then \
	  echo "zapstream is up: open the console at http://127.0.0.1:8080/console   (register, log in, link a number)"; \
	else echo "zapstream is up (console not built: needs Node.js 20.19+, see the [console] line above)"; fi
	@echo "  command API   http://127.0.0.1:8080   (OpenAPI: http://127.0.0.1:8080/docs)"
	@echo "  WebSocket     ws://127.0.0.1:8080/ws/sessions?accessToken=$(DEMO_KEY)   (also the gateway itself on :8081)"
	@echo "  simulator     http://127.0.0.1:8090   (POST /control/scan to link a session; the console shows the command)"
	@echo "  mails         without SMTP, verification and reset mails are written to $(RUNDIR)/command_api.log"
	@echo "  Kafka         127.0.0.1:19092   PostgreSQL  postgresql://zapstream:zapstream@127.0.0.1:55432/zapstream"
	@echo "  S3 (S3Proxy)  http://127.0.0.1:19000  (key zapstream / zapstream-secret)"
	@echo "  demo API key  $(DEMO_KEY)   (tenant '$(DEMO_TENANT)'; send as 'Authorization: Bearer <key>')"
	@echo "  logs          $(RUNDIR)/*.log      stop with: make dev-down"

dev-down:  ## stop the services started by make dev (SIGTERM, then SIGKILL after 20 s)
	@for svc in $(SERVICES); do \
	  if [ -f $(RUNDIR)/$$svc.pid ]; then kill $$(cat $(RUNDIR)/$$svc.pid) 2>/dev/null || true; fi; \
	done
	@for svc in $(SERVICES); do \
	  f=$(RUNDIR)/$$svc.pid; [ -f $$f ] || continue; pid=$$(cat $$f); \
	  for i in $$(seq 1 200); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	  kill -9 $$pid 2>/dev/null || true; rm -f $$f; \
	done

status:  ## show what is running
	@bash infra/bin/kafka.sh status || true
	@bash infra/bin/postgres.sh status || true
	@bash infra/bin/s3.sh status || true
	@for svc in $(SERVICES); do \
	  if [ -f $(RUNDIR)/$$svc.pid ] && kill -0 $$(cat $(RUNDIR)/$$svc.pid) 2>/dev/null; then echo "$$svc: running"; else echo "$$svc: stopped"; fi; \
	done
	@curl -s -o /dev/null -w 'webhooks /readyz: %{http_code}\n' http://127.0.0.1:9103/readyz || true

PROJECTION ?= main
replay:  ## rebuild a projection from offset 0 and swap it in with no downtime (PROJECTION=main)
	$(RUN) python -m projector replay --projection $(PROJECTION) $(if $(KEEP_OLD),--keep-old,)

replay-check:  ## compare two read-model versions: make replay-check A=rm_v1 B=rm_v2
	$(RUN) python -m projector check $(A) $(B)

lint:  ## ruff everywhere, mypy strict on every library and service
	$(RUN) ruff check .
	@for d in libs/*/src services/*/src simulator/src; do echo "mypy $$d"; $(RUN) mypy $$d || exit 1; done

schemas:  ## regenerate schemas/ from the code
	$(RUN) python -m zapstream_platform.schemagen

schemas-check:
	$(RUN) python -m zapstream_platform.schemagen --check

test: infra-up lint schemas-check  ## the whole suite against real Kafka and PostgreSQL, then the console's tests
	$(RUN) pytest tests/unit tests/integration tests/e2e --ignore=tests/e2e/browser
	@$(MAKE) --no-print-directory test-browser

# Their own pytest process: they start their own stack and SMTP inbox (see tests/e2e/browser/conftest.py).
test-browser:  ## the console: build + type check, Vitest unit tests, then headless Chromium against the real stack (~1.5 min)
	@bash infra/bin/console.sh test
	$(RUN) pytest tests/e2e/browser

test-faults: infra-up  ## fault tests: SIGKILLs, broker and database restarts (~3-5 min; restarts the SHARED infra)
	$(RUN) pytest tests/faults

test-faults-cluster: infra-up  ## a broker SIGKILLed under load on its own 3-broker cluster (ports 19192-19194; ~5 min)
	$(RUN) pytest tests/faults/test_5_broker_loss.py

bench: infra-up  ## benchmarks (~45 min) -> bench/results/*.json and bench/README.md
	$(RUN) python -m bench

test-unit:  ## pure tests only (no infrastructure)
	$(RUN) pytest tests/unit

clean: dev-down infra-down  ## stop everything and delete local data
	rm -rf $(DATA)
