"""The one message an opt-out allows: `opt_out_confirmation`, a purpose of its own.

A client who asks in their own words to stop ("please stop texting me") is opted out by
TrainU, not by GHL (GHL acts on its STOP keywords only, and confirms those itself). The
inbox then offers one confirmation that the opt-out took effect, approved like any draft;
the outbox sends it despite the opt-out, once (`messaging.policy.OPT_OUT_CONFIRMATION`).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

PURPOSES = (
    "'confirmation', 'reminder', 'no_show_checkin', 'reschedule_offer', 're_engagement', "
    "'milestone', 'reply'"
)


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE app.messages DROP CONSTRAINT messages_purpose_check,
            ADD CONSTRAINT messages_purpose_check
                CHECK (purpose IN ({PURPOSES}, 'opt_out_confirmation'));
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE app.messages DROP CONSTRAINT messages_purpose_check,
            ADD CONSTRAINT messages_purpose_check CHECK (purpose IN ({PURPOSES}));
        """
    )
