"""Hotspot pages link: the hash and expiry of the one-time link a kit script fetches the hotspot pages with.

Revision ID: 27919b699e09
Revises: 593b73b39692
Create Date: 2026-11-28 18:47:26.511138

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '27919b699e09'
down_revision = '593b73b39692'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('router', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pages_link_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pages_link_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_router_pages_link_hash'), ['pages_link_hash'])


def downgrade():
    with op.batch_alter_table('router', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_router_pages_link_hash'), type_='unique')
        batch_op.drop_column('pages_link_expires_at')
        batch_op.drop_column('pages_link_hash')
