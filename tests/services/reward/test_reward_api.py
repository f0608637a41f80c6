import asyncio
import json

import httpx
import pytest

from schemas.reward import ErrorInfo
from services.common.auth import DEV_API_KEY
from services.reward.app import create_app
from services.reward.openrlhf import log_keys, split_response
from services.reward.scoring import batch_component
from services.reward.settings import RewardSettings

GOOD = "<think>t</think><answer>[0, 0, 10, 10]</answer>"
GT = {"boxes": [[0, 0, 10, 10]]}


async def _dep_ready(context):
    return "dependency down"


async def _flaky(samples, params, context):
    """Test component: an error for every sample."""
    return [ErrorInfo(code="dependency_down", message="down") for _ in samples]


batch_component("api_test_flaky", needs="any", bounds=(0.0, 1.0), ready=_dep_ready)(_flaky)


def call(requests, **settings):
    """Run ``[(method, url, kwargs), ...]`` against a fresh app; return the responses."""
    app = create_app(RewardSettings(**settings))

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return [await c.request(m, u, **kw) for m, u, kw in requests]

    return asyncio.run(run())


def post(url, body, **settings):
    return call([("POST", url, {"json": body})], **settings)[0]


def test_score_detection_sample():
    r = post(
        "/v1/score", {"reward": "dig", "samples": [{"id": "a", "completion": GOOD, "solution": GT}]}
    )
    assert r.status_code == 200
    body = r.json()
    (res,) = body["results"]
    assert res == {
        "id": "a",
        "reward": 3.0,
        "components": {"format": 1.0, "f1": 1.0, "miou": 1.0},
        "error": None,
        "component_errors": {},
    }
    assert body["reward"]["components"][1]["params"]["tau"] == 0.5


def test_parse_failure_is_data_and_counted_in_metrics():
    r, m = call(
        [
            (
                "POST",
                "/v1/score",
                {
                    "json": {
                        "reward": "dig",
                        "samples": [{"id": "a", "completion": "x", "solution": GT}],
                    }
                },
            ),
            ("GET", "/metrics", {}),
        ]
    )
    assert r.status_code == 200
    assert r.json()["results"][0]["error"]["code"] == "no_answer"
    assert 'prl_reward_failures_total{code="no_answer",component="answer"} 1.0' in m.text


@pytest.mark.parametrize(
    "reward, fragment",
    [
        ("dgi", "did you mean 'dig'"),
        ({"components": [{"name": "miuo"}]}, "did you mean 'miou'"),
        ({"components": [{"name": "f1", "params": {"tau": 0}}]}, "reward.components[0].params.tau"),
        (
            {"components": [{"name": "f1"}], "aggregate": {"method": "harmonik"}},
            "did you mean 'harmonic'",
        ),
    ],
)
def test_bad_reward_is_422_with_a_hint(reward, fragment):
    r = post(
        "/v1/score",
        {"reward": reward, "samples": [{"id": "a", "completion": GOOD, "solution": GT}]},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_reward"
    assert fragment in r.json()["error"]["message"]


def test_frame_validation_message_names_the_field():
    sample = {"id": "a", "completion": GOOD, "solution": GT, "frame": {"coords": "norm1000"}}
    r = post("/v1/score", {"reward": "dig", "samples": [sample]})
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("samples[0].frame: image_size: required")


@pytest.mark.parametrize(
    "url, body, env",
    [
        (
            "/v1/score",
            {
                "reward": "dig",
                "samples": [{"id": str(i), "completion": GOOD, "solution": GT} for i in range(3)],
            },
            "MAX_SAMPLES",
        ),
        (
            "/v1/score",
            {
                "reward": "dig",
                "samples": [{"id": "a", "completion": GOOD + " " * 100, "solution": GT}],
            },
            "MAX_COMPLETION_CHARS",
        ),
        (
            "/v1/score",
            {
                "reward": "dig",
                "samples": [
                    {"id": "a", "completion": GOOD, "solution": {"boxes": [[0, 0, 1, 1]] * 3}}
                ],
            },
            "MAX_BOXES",
        ),
        (
            "/v1/score/groups",
            {"reward": "dig", "groups": [{"id": "g", "solution": GT, "completions": [GOOD] * 2}]},
            "MAX_GROUP_SIZE",
        ),
    ],
)
def test_limits_are_413_naming_the_env_var(url, body, env):
    r = post(url, body, max_samples=2, max_completion_chars=90, max_boxes=2, max_group_size=1)
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "limit_exceeded" and f"(PRL_REWARD_{env})" in err["message"]


def test_too_many_predicted_boxes_is_a_sample_error_not_413():
    completion = "<think>t</think><answer>" + json.dumps([[0, 0, 1, 1]] * 3) + "</answer>"
    r = post(
        "/v1/score",
        {"reward": "dig", "samples": [{"id": "a", "completion": completion, "solution": GT}]},
        max_boxes=2,
    )
    assert r.status_code == 200
    assert r.json()["results"][0]["error"]["code"] == "too_many_boxes"


def test_score_groups():
    far = "<think>t</think><answer>[50, 50, 60, 60]</answer>"
    body = {
        "reward": "dig",
        "advantage": "dr_grpo",
        "groups": [{"id": "g", "solution": GT, "completions": [GOOD, far]}],
    }
    r = post("/v1/score/groups", body)
    assert r.status_code == 200
    (g,) = r.json()["groups"]
    assert g["rewards"] == [3.0, 1.0]  # format only for the far box
    assert g["advantages"] == [1.0, -1.0]
    assert g["components"]["f1"] == [1.0, 0.0]
    assert g["zero_variance"] is False
    assert r.json()["stats"]["n_completions"] == 2


def test_component_failure_is_flagged_and_counted():
    spec = {
        "components": [{"name": "f1"}, {"name": "api_test_flaky"}],
        "aggregate": {"method": "harmonic"},
    }
    r, m = call(
        [
            (
                "POST",
                "/v1/score",
                {
                    "json": {
                        "reward": spec,
                        "samples": [{"id": "a", "completion": GOOD, "solution": GT}],
                    }
                },
            ),
            ("GET", "/metrics", {}),
        ]
    )
    res = r.json()["results"][0]
    assert (
        res["reward"] == 1.0
        and res["component_errors"]["api_test_flaky"]["code"] == "dependency_down"
    )
    assert 'component="api_test_flaky"' in m.text


def test_rewards_catalog():
    r = call([("GET", "/v1/rewards", {})])[0]
    body = r.json()
    comps = {c["name"]: c for c in body["components"]}
    assert comps["giou"]["range"] == [-1.0, 1.0]
    assert comps["alignment"]["range"] == [2.0, 25.0]  # attainable r_v, not its scale bounds
    assert comps["f1"]["params"]["properties"]["tau"]["default"] == 0.5
    assert comps["api_test_flaky"]["kind"] == "batch"
    assert {p["name"] for p in body["presets"]} >= {"dig", "virft_detection", "deva_grounding"}
    assert "Σ" in next(a for a in body["aggregators"] if a["name"] == "harmonic")["description"]
    assert {a["name"] for a in body["advantages"]} == {"grpo", "dr_grpo", "batch", "rloo"}


def test_aggregate():
    spec = {
        "components": [{"name": "format"}, {"name": "giou"}],
        "aggregate": {"method": "harmonic"},
    }
    r = post(
        "/v1/aggregate", {"reward": spec, "values": [{"format": 1.0, "giou": 0.0}, {"format": 1.0}]}
    )
    assert r.status_code == 200
    assert r.json()["rewards"] == pytest.approx([2 / 3, 1.0])
    r = post("/v1/aggregate", {"reward": spec, "values": [{"f1": 1.0}]})
    assert r.status_code == 422 and "values[0].f1" in r.json()["error"]["message"]


def test_openrlhf_get_reward():
    prompt = "<|im_start|>user\nfind the cat<|im_end|>\n<|im_start|>assistant\n"
    labels = [
        json.dumps(GT),
        json.dumps({"solution": {"label": "cat"}, "reward": "virft_classification"}),
        json.dumps(
            {
                "solution": {"boxes": [[0, 0, 64, 48]]},
                "frame": {"coords": "norm1000", "image_size": [640, 480]},
                "reward": "vlmr1_rec",
            }
        ),
    ]
    body = {
        "query": [
            prompt + GOOD + "<|im_end|>",
            prompt + "<think>t</think><answer>Cat</answer>",
            prompt + "<think>t</think><answer>[0,0,100,100]</answer>",
        ],
        "prompts": [prompt] * 3,
        "labels": labels,
    }
    r = post("/get_reward", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["rewards"] == [3.0, 2.0, 2.0]
    assert out["scores"] == out["rewards"]
    assert out["extra_logs"]["format"] == [1.0, 1.0, 1.0]
    assert out["extra_logs"]["accuracy"] == [0.0, 1.0, 0.0]
    assert out["extra_logs"]["prl_error"] == [0.0, 0.0, 0.0]
    # the same keys whatever the presets: OpenRLHF concatenates extra_logs over requests
    assert sorted(out["extra_logs"]) == sorted(log_keys())
    one = post(
        "/get_reward", {"query": body["query"][1:2], "prompts": [prompt], "labels": labels[1:2]}
    )
    assert sorted(one.json()["extra_logs"]) == sorted(out["extra_logs"])
    empty = post("/get_reward", {"query": [], "prompts": [], "labels": []}).json()
    assert empty["rewards"] == [] and all(v == [] for v in empty["extra_logs"].values())


def test_openrlhf_labels_as_objects_and_strings_score_alike():
    """OpenRLHF passes a nested JSONL field through as an object, a string field as a string."""
    prompt = "<|im_start|>user\nfind<|im_end|>\n<|im_start|>assistant\n"
    q = prompt + GOOD + "<|im_end|>"
    as_obj = post("/get_reward", {"query": [q], "prompts": [prompt], "labels": [GT]}).json()
    as_str = post(
        "/get_reward", {"query": [q], "prompts": [prompt], "labels": [json.dumps(GT)]}
    ).json()
    assert as_obj == as_str and as_obj["rewards"] == [3.0]


def test_openrlhf_vlm_query_with_expanded_image_pads_scores_the_response():
    """The processor expands the prompt's one <|image_pad|> into one per vision token, so the
    query does not start with the prompt; the answer must still be found (DiG format = 1)."""
    head = "<|im_start|>user\n<|vision_start|>"
    tail = "<|vision_end|>find the changes<|im_end|>\n<|im_start|>assistant\n"
    prompt = head + "<|image_pad|>" + tail
    query = head + "<|image_pad|>" * 16 + tail + GOOD + "<|im_end|><|endoftext|>"
    out = post("/get_reward", {"query": [query], "prompts": [prompt], "labels": [GT]}).json()
    assert out["rewards"] == [3.0] and out["extra_logs"]["format"] == [1.0]


@pytest.mark.parametrize(
    "label, fragment",
    [
        ("not json", "labels[0]: not JSON"),
        ('{"boxes": [[2, 0, 1, 1]]}', "labels[0].solution"),
        ("", "labels[0]: empty"),
        (None, "labels[0]: missing"),
        ({"solution": {"label": "cat"}, "reward": "no_such_preset"}, "labels[0].reward"),
    ],
)
def test_openrlhf_bad_label_is_per_sample_data_not_4xx(label, fragment):
    prompt = "<|im_start|>user\nfind<|im_end|>\n<|im_start|>assistant\n"
    body = {
        "query": [prompt + GOOD, prompt + GOOD],
        "prompts": [prompt, prompt],
        "labels": [label, json.dumps(GT)],
    }
    r = post("/get_reward", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["rewards"] == [0.0, 3.0]
    assert out["extra_logs"]["prl_error"] == [1.0, 0.0]
    assert sorted(out["extra_logs"]) == sorted(log_keys())


def test_openrlhf_mismatched_lists_are_422():
    r = post("/get_reward", {"query": ["a"], "prompts": [], "labels": []})
    assert r.status_code == 422 and "same length" in r.json()["error"]["message"]


def test_response_extraction():
    assert split_response("PROMPT answer<|im_end|>", "PROMPT") == " answer"
    assert split_response("<s>PROMPT answer</s>", "PROMPT") == " answer"
    assert split_response("no prompt here", "PROMPT") == "no prompt here"
    turn = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    assert split_response("sys" + turn + "ans<|im_end|>", "other prompt") == "ans"


def test_read_auth_and_readiness():
    r = post("/v1/rewards", {}, auth_read=True)
    assert r.status_code in (401, 405)
    r = call([("GET", "/v1/rewards", {})], auth_read=True)[0]
    assert r.status_code == 401
    r = call(
        [("GET", "/v1/rewards", {"headers": {"Authorization": f"Bearer {DEV_API_KEY}"}})],
        auth_read=True,
    )[0]
    assert r.status_code == 200
    assert call([("GET", "/readyz", {})])[0].status_code == 200
    r = call([("GET", "/readyz", {})], ready_components=["api_test_flaky"])[0]
    assert r.status_code == 503
    assert r.json()["failing"] == {"component:api_test_flaky": "dependency down"}


def test_malformed_json_is_422_and_empty_batches_work():
    r = call(
        [
            (
                "POST",
                "/v1/score",
                {
                    "content": b'{"reward": "dig", "samples": [',
                    "headers": {"content-type": "application/json"},
                },
            )
        ]
    )[0]
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert post("/v1/score", {"reward": "dig", "samples": []}).json()["results"] == []
    out = post("/v1/score/groups", {"reward": "dig", "groups": []}).json()
    assert out["groups"] == [] and out["stats"]["n_completions"] == 0
