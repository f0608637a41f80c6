"""Mean-reward metrics keyed by their reward spec: ``reward`` → ``reward[<spec>]`` + spec hash.

Before this revision every run's mean aggregated reward was stored as ``reward`` whatever the
reward spec, so runs scored with DEVA's harmonic reward ([0, 0.3] on DiG) and ``dig``'s sum
([0, 3]) were ranked together. Upgrade adds ``metrics.reward_spec`` / ``reward_spec_hash``
and renames each stored ``[prefix/]reward`` metric after the reward its run was scored with
(``runs.config["reward"]``: a preset name or a spec), hashed as
:func:`services.benchmark.reward_key.reward_key` hashes it. A run whose config names no
reward keeps ``reward`` with no spec (the leaderboard then cannot tell it apart). Downgrade
strips the ``[<spec>]`` suffix and drops the columns.

Revision ID: 0002_reward_spec
Revises: 0001_initial
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002_reward_spec"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

_BARE = re.compile(r"^((?:.*/)?)reward$")
_KEYED = re.compile(r"^((?:.*/)?)reward\[[^\]]*\]$")


def _key(ref: Any) -> tuple[str, str]:
    try:
        from services.benchmark.reward_key import reward_key

        k = reward_key(ref)
        return k.name, k.hash
    except Exception:  # the code's spec model changed: hash the stored reference as it is
        digest = hashlib.sha256(
            json.dumps(ref, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ).hexdigest()
        return (ref if isinstance(ref, str) else f"custom-{digest[:8]}"), digest


def _tables() -> tuple[sa.Table, sa.Table]:
    meta = sa.MetaData()
    metrics = sa.Table(
        "metrics",
        meta,
        sa.Column("id", sa.Integer),
        sa.Column("run_id", sa.Integer),
        sa.Column("name", sa.String(128)),
        sa.Column("reward_spec", sa.String(128)),
        sa.Column("reward_spec_hash", sa.String(64)),
    )
    runs = sa.Table("runs", meta, sa.Column("id", sa.Integer), sa.Column("config", sa.JSON))
    return metrics, runs


LEADERBOARD_INDEX = ["suite_id", "name", "run_completed", "model_id", "value", "higher_is_better"]


def upgrade() -> None:
    op.add_column("metrics", sa.Column("reward_spec", sa.String(128), nullable=True))
    op.add_column("metrics", sa.Column("reward_spec_hash", sa.String(64), nullable=True))
    # the leaderboard's covering index also covers the spec hash, so checking that every
    # ranked run of a reward metric has one spec costs no table lookups
    op.drop_index("ix_metrics_leaderboard", table_name="metrics")
    op.create_index("ix_metrics_leaderboard", "metrics", [*LEADERBOARD_INDEX, "reward_spec_hash"])
    metrics, runs = _tables()
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(metrics.c.id, metrics.c.name, runs.c.config).join(
            runs, runs.c.id == metrics.c.run_id
        )
    ).all()
    for metric_id, name, config in rows:
        bare = _BARE.match(name)
        ref = (config or {}).get("reward") if isinstance(config, dict) else None
        if bare is None or ref is None:
            continue
        spec, digest = _key(ref)
        conn.execute(
            metrics.update()
            .where(metrics.c.id == metric_id)
            .values(
                name=f"{bare.group(1)}reward[{spec}]", reward_spec=spec, reward_spec_hash=digest
            )
        )


def downgrade() -> None:
    metrics, _ = _tables()
    conn = op.get_bind()
    for metric_id, name in conn.execute(sa.select(metrics.c.id, metrics.c.name)).all():
        keyed = _KEYED.match(name)
        if keyed is not None:
            conn.execute(
                metrics.update()
                .where(metrics.c.id == metric_id)
                .values(name=f"{keyed.group(1)}reward")
            )
    op.drop_index("ix_metrics_leaderboard", table_name="metrics")
    op.create_index("ix_metrics_leaderboard", "metrics", LEADERBOARD_INDEX)
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("reward_spec_hash")
        batch.drop_column("reward_spec")
