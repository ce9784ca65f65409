"""Sale email queue: the time of an order's last sale email attempt, and an index on the emails still to send.

The worker sends the owners' sale emails in batches; the attempt's time keeps a second worker away
from an attempt under way, and the partial index keeps finding the few unsent among every sale fast.

Revision ID: d8713de92754
Revises: 27919b699e09
Create Date: 2026-11-28 21:14:26.426018

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd8713de92754'
down_revision = '27919b699e09'
branch_labels = None
depends_on = None

DUE = sa.text("status = 'provisioned' AND email_sent_at IS NULL")


def upgrade():
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_attempted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_order_email_due', ['email_attempts', 'id'], unique=False,
                              postgresql_where=DUE, sqlite_where=DUE)


def downgrade():
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.drop_index('ix_order_email_due', postgresql_where=DUE, sqlite_where=DUE)
        batch_op.drop_column('email_attempted_at')
