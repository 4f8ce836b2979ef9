# Passbook on Node 24. Build: docker build -t passbook .
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The production image runs on the image's own Node 24; the node@24 devDependency is not needed.
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY migrations ./migrations
COPY public ./public
COPY scripts/compile-cache.ts scripts/start-script.ts ./scripts/
# As `npm start`: modules come from Node.js's compile cache, filled here as the user the node runs
# as (the cache is kept per user), so that no node loads the TypeScript parser.
ENV NODE_COMPILE_CACHE=node_modules/.cache/passbook
RUN mkdir -p node_modules/.cache/passbook && chown node node_modules/.cache/passbook
USER node
RUN node scripts/compile-cache.ts
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:3000/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
CMD ["node", "--max-semi-space-size=4", "--heap-growing-percent=100", "src/main.ts"]
