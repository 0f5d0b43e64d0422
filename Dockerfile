# Pitboss runs its TypeScript directly on Node.js 24's type stripping: there is no
# build step. In development every npm script runs on the Node 24 that the `node`
# devDependency installs; this image uses the base image's own Node 24 instead and
# installs the production dependencies only.
#
#   docker build -t pitboss .
#   docker run -p 8080:8080 -e DATABASE_URL=postgres://... pitboss

# Production dependencies, installed exactly as the lock file says.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production \
    PORT=8080 \
    DATA_DIR=/app/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
# Only used with the embedded database (no DATABASE_URL), which is for trying the image
# out: mount a volume here to keep that data.
RUN mkdir -p /app/data && chown node:node /app/data
# The base image's unprivileged user.
USER node
EXPOSE 8080
# The base image has no curl; Node's fetch does the probe. Start-up migrates first,
# hence the start period.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself, then drains and exits
# (graceful shutdown, bounded by SHUTDOWN_TIMEOUT_MS). The Node flags are those of
# `npm start` (docs/operations.md, "Node flags").
CMD ["node", "--max-semi-space-size=16", "bin/pitboss.js", "serve"]
